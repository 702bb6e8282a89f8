//! HPACK against hpack-test-case (corpus `hpack-test-case/`): every story of every encoder
//! must decode exactly — same headers, same order — with one decoder context per story and
//! `header_table_size` applied when a case carries it. Two decoders are held to it: Fathom's
//! `HeaderDecoder`, which decodes with the `loona-hpack` crate while the table is known (the
//! test also checks it never had to fall back), and the tolerant decoder used after mid-stream
//! pickups, started from a known (empty) table.

mod proto_support;

use fathom_l7::http2::hpack::{HeaderDecoder, Tolerant};
use proto_support::{corpus, hex};
use std::path::Path;

type Headers = Vec<(Vec<u8>, Vec<u8>)>;

struct Case {
    table_size: Option<usize>,
    wire: Vec<u8>,
    headers: Headers,
}

fn stories(root: &Path) -> Vec<(String, Vec<Case>)> {
    let mut out = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .expect("corpus dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("story dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for f in files {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&f).expect("read story"))
                    .expect("story json");
            let mut cases = Vec::new();
            for c in v["cases"].as_array().into_iter().flatten() {
                // raw-data stories have no wire encoding: nothing to decode.
                let Some(wire) = c["wire"].as_str() else {
                    continue;
                };
                let headers = c["headers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| {
                        h.as_object()?.iter().next().map(|(k, v)| {
                            (
                                k.as_bytes().to_vec(),
                                v.as_str().unwrap_or("").as_bytes().to_vec(),
                            )
                        })
                    })
                    .collect();
                cases.push(Case {
                    table_size: c["header_table_size"].as_u64().map(|n| n as usize),
                    wire: hex(wire),
                    headers,
                });
            }
            if !cases.is_empty() {
                out.push((f.display().to_string(), cases));
            }
        }
    }
    out
}

#[test]
fn hpack_test_case_all_stories_decode_exactly() {
    let Some(root) = corpus() else { return };
    let stories = stories(&root.join("hpack-test-case"));
    let cases: usize = stories.iter().map(|s| s.1.len()).sum();
    let (mut ours_ok, mut tolerant_ok) = (0, 0);
    let mut failures = Vec::new();
    for (name, cases) in &stories {
        let mut ours = HeaderDecoder::new(1 << 16);
        let mut tolerant = Tolerant::new(4096);
        let mut allowed = 4096;
        let (mut b, mut c) = (true, true);
        for (i, case) in cases.iter().enumerate() {
            if let Some(n) = case.table_size {
                ours.set_max_allowed(n, 1 << 16);
                allowed = n;
            }
            let mut got: Headers = Vec::new();
            let o = ours.decode(&case.wire, |n, v| got.push((n.to_vec(), v.to_vec())));
            if (got != case.headers || o.undecodable > 0 || o.malformed || !ours.exact()) && b {
                failures.push(format!("HeaderDecoder: {name} case {i}"));
                b = false;
            }
            let mut got: Headers = Vec::new();
            let o = tolerant.decode(&case.wire, allowed, |n, v| {
                got.push((n.to_vec(), v.to_vec()))
            });
            if (got != case.headers || o.undecodable > 0 || o.malformed) && c {
                failures.push(format!("Tolerant: {name} case {i}"));
                c = false;
            }
        }
        ours_ok += b as usize;
        tolerant_ok += c as usize;
    }
    let n = stories.len();
    println!("hpack-test-case: {n} stories, {cases} header blocks");
    println!("  HeaderDecoder (loona-hpack) {ours_ok}/{n} stories exact");
    println!("  Tolerant (known table)      {tolerant_ok}/{n} stories exact");
    assert!(n >= 70, "expected the full corpus, found {n} stories");
    assert!(failures.is_empty(), "{failures:#?}");
}
