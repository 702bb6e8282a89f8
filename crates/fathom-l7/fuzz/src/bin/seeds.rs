//! Writes seed corpora for the fuzz targets: `seeds OUT_DIR [CAPTURE_DIR...]`.
//!
//! Conversations are cut out of real captures (the crate's test captures, plus any
//! directories given, e.g. the shared corpus), classified by Fathom's own inference, and
//! written in the script format of `fathom_l7_fuzz::parse` into `OUT_DIR/<target>/`. Small
//! capture files become seeds of the `pcap` target as they are. Kafka and HPACK get
//! hand-written seeds (no capture here has them on their own). Seeds only need to be valid
//! enough to lead the fuzzer into the parsers; the TCP "reassembly" here is naive (capture
//! order, no retransmission handling).

use std::collections::HashMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use fathom_l7::capture::{decode_ip, decode_transport, strip_link, CaptureReader, TransportHeader};
use fathom_l7::infer::{self, Transport, Verdict};
use fathom_l7::parser::Direction;
use fathom_l7_fuzz::encode;
use fathom_model::l7::L7Protocol;

use Direction::{ClientToServer as C, ServerToClient as S};

/// Bytes of one conversation kept as a seed (libFuzzer's -max_len is set from the corpus).
const MAX_SEED: usize = 16 * 1024;
/// Seeds per target.
const MAX_PER_TARGET: usize = 64;
/// Capture files larger than this are not used as pcap seeds.
const MAX_PCAP_SEED: u64 = 64 * 1024;

type Key = (IpAddr, u16, IpAddr, u16, bool);

#[derive(Default)]
struct Conv {
    /// (from the first sender?, bytes)
    steps: Vec<(bool, Vec<u8>)>,
    size: usize,
}

fn captures(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x, "pcap" | "pcapng" | "trace" | "cap"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Conversations of one capture, keyed by (first sender, its port, peer, peer port, udp).
fn conversations(path: &Path) -> Vec<(Key, Conv)> {
    let Ok(mut r) = CaptureReader::open(path) else {
        return Vec::new();
    };
    let mut order: Vec<Key> = Vec::new();
    let mut convs: HashMap<Key, Conv> = HashMap::new();
    while let Ok(Some(p)) = r.next_packet() {
        let Ok(off) = strip_link(p.linktype, p.data) else {
            continue;
        };
        let Ok(ip) = decode_ip(&p.data[off..]) else {
            continue;
        };
        if ip.frag.is_some() {
            continue;
        }
        let Ok(t) = decode_transport(ip.src, ip.dst, ip.proto, ip.payload, ip.payload_wire_len)
        else {
            continue;
        };
        let (udp, (sp, dp)) = match t.header {
            TransportHeader::Tcp(h) => (false, (h.src_port, h.dst_port)),
            TransportHeader::Udp { .. } => (true, t.header.ports()),
            _ => continue,
        };
        if t.payload.is_empty() {
            continue;
        }
        let fwd = (ip.src, sp, ip.dst, dp, udp);
        let rev = (ip.dst, dp, ip.src, sp, udp);
        let (key, first) = if convs.contains_key(&rev) {
            (rev, false)
        } else {
            (fwd, true)
        };
        let c = convs.entry(key).or_insert_with(|| {
            order.push(key);
            Conv::default()
        });
        if c.size >= MAX_SEED {
            continue;
        }
        let take = t.payload.len().min(MAX_SEED - c.size);
        c.size += take;
        match c.steps.last_mut() {
            // Consecutive TCP segments in one direction are one step (the target re-cuts).
            Some((f, b)) if !udp && *f == first => b.extend_from_slice(&t.payload[..take]),
            _ => c.steps.push((first, t.payload[..take].to_vec())),
        }
    }
    order
        .into_iter()
        .filter_map(|k| convs.remove(&k).map(|c| (k, c)))
        .collect()
}

/// Which target a conversation seeds, by Fathom's inference (directions fixed up).
fn classify(key: &Key, conv: &Conv) -> Option<(&'static str, bool)> {
    let udp = key.4;
    let transport = if udp { Transport::Udp } else { Transport::Tcp };
    let cands = infer::candidates_for(transport, key.3, None);
    let verdict = if udp {
        let (first, bytes) = conv.steps.first()?;
        let dir = if *first { C } else { S };
        infer::infer_datagram(&cands, dir, bytes)
    } else {
        let c2s = conv
            .steps
            .iter()
            .find(|s| s.0)
            .map(|s| &s.1[..])
            .unwrap_or(&[]);
        let s2c = conv
            .steps
            .iter()
            .find(|s| !s.0)
            .map(|s| &s.1[..])
            .unwrap_or(&[]);
        infer::infer(&cands, c2s, s2c, true)
    };
    let Verdict::Decided { index, flipped } = verdict else {
        return None;
    };
    let target = match (cands[index].protocol, udp) {
        (L7Protocol::Http, _) => "http1",
        (L7Protocol::Http2 | L7Protocol::Grpc, _) => "http2",
        (L7Protocol::Dns, true) => "dns_udp",
        (L7Protocol::Dns, false) => "dns_tcp",
        (L7Protocol::Tls, _) => "tls",
        (L7Protocol::Redis, _) => "redis",
        (L7Protocol::Kafka, _) => "kafka",
        (L7Protocol::Postgres, _) => "postgres",
        (L7Protocol::Mysql, _) => "mysql",
    };
    Some((target, flipped))
}

struct Out {
    dir: PathBuf,
    counts: HashMap<String, usize>,
}

impl Out {
    fn write(&mut self, target: &str, name: &str, bytes: &[u8]) {
        self.write_capped(target, target, MAX_PER_TARGET, name, bytes);
    }

    /// `count_as` lets one target keep a separate budget per kind of seed.
    fn write_capped(&mut self, target: &str, count_as: &str, cap: usize, name: &str, bytes: &[u8]) {
        let n = self.counts.entry(count_as.to_string()).or_insert(0);
        if *n >= cap {
            return;
        }
        *n += 1;
        let d = self.dir.join(target);
        if fs::create_dir_all(&d).is_ok() {
            let _ = fs::write(d.join(format!("seed-{name}")), bytes);
        }
    }
}

fn script(conv: &Conv, flipped: bool) -> Vec<u8> {
    let steps: Vec<(Direction, &[u8])> = conv
        .steps
        .iter()
        .map(|(first, b)| (if *first != flipped { C } else { S }, &b[..]))
        .collect();
    encode(0, &steps)
}

fn hand_written(out: &mut Out) {
    // Kafka ApiVersions v0 request and response, and a Metadata v1 request.
    let api_versions_req: &[u8] = b"\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x01\x00\x04fuzz";
    let api_versions_resp: &[u8] =
        b"\x00\x00\x00\x10\x00\x00\x00\x01\x00\x00\x00\x00\x00\x01\x00\x12\x00\x00\x00\x03";
    let metadata_req: &[u8] =
        b"\x00\x00\x00\x15\x00\x03\x00\x01\x00\x00\x00\x02\x00\x04fuzz\x00\x00\x00\x01\x00\x01t";
    out.write(
        "kafka",
        "apiversions",
        &encode(
            0,
            &[
                (C, api_versions_req),
                (S, api_versions_resp),
                (C, metadata_req),
            ],
        ),
    );
    out.write(
        "kafka",
        "apiversions-cut",
        &encode(3, &[(C, api_versions_req), (S, api_versions_resp)]),
    );
    // HPACK: RFC 7541 C.3 (no Huffman) and C.4 (Huffman) request blocks, one per step.
    let c3: [&[u8]; 3] = [
        b"\x82\x86\x84\x41\x0fwww.example.com",
        b"\x82\x86\x84\xbe\x58\x08no-cache",
        b"\x82\x87\x85\xbf\x40\x0acustom-key\x0ccustom-value",
    ];
    let c4: [&[u8]; 2] = [
        b"\x82\x86\x84\x41\x8c\xf1\xe3\xc2\xe5\xf2\x3a\x6b\xa0\xab\x90\xf4\xff",
        b"\x82\x86\x84\xbe\x58\x86\xa8\xeb\x10\x64\x9c\xbf",
    ];
    out.write("hpack", "c3", &encode(16, &c3.map(|b| (C, b))));
    out.write("hpack", "c4", &encode(16, &c4.map(|b| (C, b))));
    // A tiny HTTP/1 and Redis exchange, for when no capture is around.
    out.write(
        "http1",
        "get",
        &encode(
            0,
            &[
                (C, b"GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n"),
                (
                    S,
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                ),
            ],
        ),
    );
    out.write(
        "redis",
        "set",
        &encode(
            0,
            &[
                (C, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"),
                (S, b"+OK\r\n"),
                (C, b"PING\r\n"),
                (S, b"-ERR x\r\n"),
            ],
        ),
    );
}

fn main() {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let Some(dir) = args.next() else {
        eprintln!("usage: seeds OUT_DIR [CAPTURE_DIR...]");
        std::process::exit(2);
    };
    let mut dirs: Vec<PathBuf> = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data")];
    dirs.extend(args);
    let mut out = Out {
        dir,
        counts: HashMap::new(),
    };
    hand_written(&mut out);
    for (i, path) in captures(&dirs).iter().enumerate() {
        if fs::metadata(path).is_ok_and(|m| m.len() <= MAX_PCAP_SEED) {
            if let Ok(bytes) = fs::read(path) {
                // Byte 0 is the pcap target's mode byte (default options).
                let mut seed = vec![0u8];
                seed.extend_from_slice(&bytes);
                out.write("pcap", &format!("{i}"), &seed);
            }
        }
        for (j, (key, conv)) in conversations(path).iter().enumerate() {
            let Some((target, flipped)) = classify(key, conv) else {
                continue;
            };
            let s = script(conv, flipped);
            out.write(target, &format!("{i}-{j}"), &s);
            // The session target takes a 3-byte prefix: flags (bit 0 UDP), server port.
            let mut sess = vec![u8::from(key.4)];
            sess.extend_from_slice(&key.3.to_be_bytes());
            sess.extend_from_slice(&s);
            // A few per protocol, so that every parser is reached through inference.
            let budget = format!("session/{target}");
            out.write_capped("session", &budget, 8, &format!("{i}-{j}"), &sess);
        }
    }
    let mut counts: Vec<_> = out.counts.iter().collect();
    counts.sort();
    for (t, n) in counts {
        println!("{t}: {n} seeds");
    }
}
