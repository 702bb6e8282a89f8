//! Helpers shared by the HTTP/2, Redis, Kafka, PostgreSQL and MySQL parser tests: scripted
//! conversations, feeding them whole / byte by byte / in random chunks, and the corpus path.

#![allow(dead_code)]

use fathom_l7::parser::{Direction, ParserStats, ProtocolParser};
use fathom_l7::replay::{replay_file, ProtocolStats, ReplayOptions};
use fathom_model::l7::{L7Exchange, L7Protocol};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[allow(unused_imports)]
pub use Direction::{ClientToServer as C, ServerToClient as S};

/// One chunk of a conversation: direction, timestamp, bytes.
pub type Seg = (Direction, u64, Vec<u8>);

pub fn seg(dir: Direction, ts: u64, bytes: impl AsRef<[u8]>) -> Seg {
    (dir, ts, bytes.as_ref().to_vec())
}

/// Feeds each segment cut into pieces whose sizes cycle through `cuts` (all at the segment's
/// timestamp), then finishes the connection.
pub fn run_cut<P: ProtocolParser>(
    mut p: P,
    segs: &[Seg],
    cuts: &[usize],
) -> (Vec<L7Exchange>, ParserStats) {
    let mut out = Vec::new();
    let mut k = 0;
    for (dir, ts, bytes) in segs {
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = if cuts.is_empty() {
                rest.len()
            } else {
                cuts[k % cuts.len()].max(1)
            };
            k += 1;
            let (a, b) = rest.split_at(n.min(rest.len()));
            p.feed(*dir, *ts, a, &mut out);
            rest = b;
        }
    }
    let end = segs.last().map_or(0, |s| s.1) + 1;
    p.finish(end, &mut out);
    (out, p.stats())
}

pub fn run<P: ProtocolParser>(p: P, segs: &[Seg]) -> Vec<L7Exchange> {
    run_cut(p, segs, &[]).0
}

pub fn run_bytewise<P: ProtocolParser>(p: P, segs: &[Seg]) -> Vec<L7Exchange> {
    run_cut(p, segs, &[1]).0
}

/// Runs a conversation whole, byte by byte, and in a few fixed odd chunkings, and asserts
/// they all give the same exchanges; returns them.
pub fn run_invariant<P: ProtocolParser>(make: impl Fn() -> P, segs: &[Seg]) -> Vec<L7Exchange> {
    let whole = run(make(), segs);
    assert_eq!(run_bytewise(make(), segs), whole, "byte-at-a-time differs");
    for cuts in [&[2usize][..], &[3, 7], &[5, 1, 13], &[64]] {
        assert_eq!(
            run_cut(make(), segs, cuts).0,
            whole,
            "chunking {cuts:?} differs"
        );
    }
    whole
}

/// The corpus root from `FATHOM_CORPUS`, or `None` after saying why the test is skipped.
pub fn corpus() -> Option<PathBuf> {
    match std::env::var_os("FATHOM_CORPUS") {
        Some(p) => {
            let p = PathBuf::from(p);
            if p.is_dir() {
                Some(p)
            } else {
                eprintln!("FATHOM_CORPUS={} is not a directory: skipping", p.display());
                None
            }
        }
        None => {
            eprintln!("FATHOM_CORPUS not set: skipping");
            None
        }
    }
}

/// Decodes hex (whitespace ignored).
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex digit"))
        .collect()
}

/// Replays a capture through the whole engine (`replay_file`: capture reading, TCP
/// reassembly, inference from the bytes, the parser), keeping `protocols` (HTTP/2 parsers
/// also report gRPC). Returns the exchanges per connection (connections in order of their
/// first record) and the parser counters summed over those protocols.
pub fn replay_capture(
    path: &Path,
    protocols: &[L7Protocol],
) -> (Vec<Vec<L7Exchange>>, ProtocolStats) {
    let mut opts = ReplayOptions::default().with_protocols(protocols.to_vec());
    // Loopback captures carry 64 KB segments. With the default 16 KB inference buffer the
    // session layer drops the rest of a first segment larger than that (reported to the
    // parser as a gap), which is not what these tests are about.
    opts.session.max_inference_bytes = 1 << 20;
    let report = match replay_file(path, &opts) {
        Ok(r) => r,
        Err(e) => *e.report,
    };
    let mut by_conn: Vec<((IpAddr, u16), Vec<L7Exchange>)> = Vec::new();
    for r in report.l7() {
        let client = (r.source.ip, r.source.port);
        match by_conn.iter_mut().find(|(c, _)| *c == client) {
            Some((_, v)) => v.push(r.exchange.clone()),
            None => by_conn.push((client, vec![r.exchange.clone()])),
        }
    }
    let mut stats = ProtocolStats::default();
    for p in protocols {
        let s = report.stats.protocols.get(p).copied().unwrap_or_default();
        stats.connections += s.connections;
        stats.records += s.records;
        stats.skipped_bytes += s.skipped_bytes;
        stats.gap_bytes += s.gap_bytes;
        stats.overflow_bytes += s.overflow_bytes;
    }
    (by_conn.into_iter().map(|(_, v)| v).collect(), stats)
}

/// A checked-in capture of ours.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}
