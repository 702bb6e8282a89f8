//! A replay sharded over several threads gives the one-thread replay's records and
//! statistics exactly: on every capture of the corpus, and on a hand-built capture made to
//! stress the merge (many flows whose packets interleave, equal timestamps across flows, IP
//! fragments, idle flows swept mid-capture, port reuse, a truncated end).

mod core_common;

use std::net::Ipv4Addr;
use std::path::Path;

use core_common::frames::{self, ACK, FIN, PSH, SYN};
use fathom_l7::replay::{replay_reader, ReplayError, ReplayOptions, ReplayReport};
use fathom_model::{FlowEndReason, Record};

const CLI: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const SRV: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000_000_000_000;

fn replay(cap: &[u8], threads: usize) -> Result<ReplayReport, ReplayError> {
    let opts = ReplayOptions {
        threads,
        ..ReplayOptions::default()
    };
    replay_reader(cap, &opts)
}

/// The replay of `cap` on 2 and 3 threads equals the one-thread replay; returns the latter.
fn assert_same_sharded(name: &str, cap: &[u8]) -> Result<ReplayReport, ReplayError> {
    let one = replay(cap, 1);
    for threads in [2, 3] {
        let many = replay(cap, threads);
        match (&one, &many) {
            (Ok(a), Ok(b)) => assert!(a == b, "{name}: {threads} threads differ from one"),
            (Err(a), Err(b)) => {
                assert_eq!((a.kind, a.offset), (b.kind, b.offset), "{name}: error");
                assert!(
                    a.report == b.report,
                    "{name}: {threads} threads differ (error)"
                );
            }
            _ => panic!(
                "{name}: one thread {:?}, {threads}: {:?}",
                one.is_ok(),
                many.is_ok()
            ),
        }
    }
    one
}

fn captures(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            captures(&p, out);
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| matches!(x, "pcap" | "pcapng" | "cap"))
        {
            out.push(p);
        }
    }
}

#[test]
fn corpus_captures_replay_the_same_on_several_threads() {
    let Some(corpus) = core_common::corpus() else {
        return;
    };
    let mut files = Vec::new();
    captures(&corpus, &mut files);
    files.sort();
    assert!(files.len() > 100, "corpus captures found: {}", files.len());
    let mut records = 0;
    for f in &files {
        let cap = std::fs::read(f).expect("read capture");
        let one = assert_same_sharded(&f.display().to_string(), &cap);
        records += match &one {
            Ok(r) => r.records.len(),
            Err(e) => e.report.records.len(),
        };
    }
    // The comparison covered real output, not empty reports.
    assert!(records > 1000, "records compared: {records}");
}

/// A TCP connection from client port `port`: handshake, an HTTP exchange, FIN both ways;
/// its packets at `at(k)` for the k-th packet.
fn http_conn(port: u16, at: impl Fn(u64) -> u64) -> Vec<(u64, Vec<u8>)> {
    let (c, s) = ((CLI, port), (SRV, 80));
    let req = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let q = req.len() as u32;
    let r = resp.len() as u32;
    let pkts = [
        frames::tcp(c, s, 100, 0, SYN, b"", true),
        frames::tcp(s, c, 500, 101, SYN | ACK, b"", true),
        frames::tcp(c, s, 101, 501, ACK | PSH, req, true),
        frames::tcp(s, c, 501, 101 + q, ACK | PSH, resp, true),
        frames::tcp(c, s, 101 + q, 501 + r, ACK | FIN, b"", true),
        frames::tcp(s, c, 501 + r, 102 + q, ACK | FIN, b"", true),
    ];
    pkts.into_iter()
        .enumerate()
        .map(|(k, p)| (at(k as u64), p))
        .collect()
}

fn stress_capture() -> Vec<u8> {
    let mut frames_at: Vec<(u64, Vec<u8>)> = Vec::new();
    // Pairs of connections in lockstep: their packets have the same timestamps.
    for i in 0..40u16 {
        let base = T0 + u64::from(i / 2) * 3 * MS;
        frames_at.extend(http_conn(20_000 + i, |k| base + k * MS));
    }
    // Fragmented UDP datagrams (DNS port, not DNS: unidentified), three per timestamp.
    for i in 0..30u16 {
        let ts = T0 + u64::from(i / 3) * 2 * MS;
        let payload = vec![i as u8; 3000];
        for f in frames::udp_fragments((CLI, 40_000 + i), (SRV, 53), &payload, 1480, 7 + i) {
            frames_at.push((ts, f));
        }
    }
    // Capture order is by time; equal times keep the order built (connections first).
    frames_at.sort_by_key(|(ts, _)| *ts);
    // Two minutes later: the UDP flows are swept as idle before these packets; a
    // connection reuses the first one's ports.
    let later = T0 + 120_000 * MS;
    frames_at.extend(http_conn(20_000, |k| later + k * MS));
    frames_at.extend(http_conn(30_000, |k| later + k * MS));
    frames::pcap(&frames_at)
}

#[test]
fn interleaved_flows_fragments_and_sweeps_replay_the_same_on_several_threads() {
    let cap = stress_capture();
    let r = assert_same_sharded("stress", &cap).expect("replay");
    let flows: Vec<_> = r.flows().collect();
    assert_eq!(flows.len(), 40 + 30 + 2);
    let idle = flows
        .iter()
        .filter(|f| f.end_reason == Some(FlowEndReason::Idle))
        .count();
    assert_eq!(idle, 30, "UDP flows swept as idle");
    assert_eq!(r.l7().count(), 42);
    assert_eq!(r.stats.reassembled_datagrams, 30);
    let times: Vec<u64> = r.records.iter().map(|x| x.time().0).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "sorted by time");
    // Equal times across flows: the lockstep connections' records tie.
    assert!(times.windows(2).any(|w| w[0] == w[1]));
    assert!(r.records.iter().any(|x| matches!(x, Record::Flow(_))));

    // Cut inside the last packet: both fail at the same offset with the same records.
    let cut = &cap[..cap.len() - 10];
    let e = assert_same_sharded("stress, truncated", cut).expect_err("truncated");
    assert!(!e.report.records.is_empty());
}
