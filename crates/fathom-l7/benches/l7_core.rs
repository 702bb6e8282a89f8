//! Throughput of the core engine, each next to a baseline measured in the same run:
//! - HTTP/1 parsing and pairing vs. `httparse` parsing the same heads alone (the floor any
//!   HTTP/1 observer pays), whole and one byte at a time;
//! - DNS message decoding vs. copying the same bytes;
//! - TLS hello extraction vs. scanning the same bytes;
//! - TCP reassembly in order vs. reordered with duplicates;
//! - full replay of a synthetic capture (packets per second).
//!
//! Figures are printed (criterion, then a ratio table); nothing asserts on wall time.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, Criterion, Throughput};
use fathom_l7::capture::tcp::{HalfStream, TcpLimits};
use fathom_l7::capture::writer::PcapWriter;
use fathom_l7::dns::{DnsParser, DnsTransport};
use fathom_l7::http1::Http1Parser;
use fathom_l7::parser::{Direction, ProtocolParser};
use fathom_l7::replay::{replay_reader, ReplayOptions};
use fathom_l7::tls::TlsParser;

const N: usize = 200;

const REQ: &str = "GET /api/v1/items/42?q=abc HTTP/1.1\r\nHost: svc.local\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"id\":1,\"name\":\"something\"}";

/// Both directions of a keep-alive connection carrying N exchanges.
fn http_streams() -> (Vec<u8>, Vec<u8>) {
    (REQ.repeat(N).into_bytes(), RESP.repeat(N))
}

/// Feed exchange by exchange (request, then its response), each message cut in `chunk`s.
fn run_http(c: &[u8], s: &[u8], chunk: usize) -> usize {
    let mut p = Http1Parser::new();
    let mut out = Vec::with_capacity(N);
    for (a, b) in c.chunks(REQ.len()).zip(s.chunks(RESP.len())) {
        for piece in a.chunks(chunk.max(1)) {
            p.feed(Direction::ClientToServer, 1, piece, &mut out);
        }
        for piece in b.chunks(chunk.max(1)) {
            p.feed(Direction::ServerToClient, 2, piece, &mut out);
        }
    }
    p.finish(3, &mut out);
    out.len()
}

/// Baseline: `httparse` on each head, nothing else.
fn httparse_only(c: &[u8]) -> usize {
    let mut n = 0;
    let mut rest = c;
    while !rest.is_empty() {
        let mut h = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Request::new(&mut h);
        match r.parse(rest) {
            Ok(httparse::Status::Complete(len)) => {
                n += 1;
                rest = &rest[len..];
            }
            _ => break,
        }
    }
    n
}

fn dns_stream() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..N as u16 {
        let mut m = i.to_be_bytes().to_vec();
        m.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0]);
        m.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[
            0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6, 3, b'w', b'e', b'b', 0xc0, 16,
        ]);
        for k in 0..2u8 {
            m.extend_from_slice(&[0xc0, 45, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 10, 0, 0, k]);
        }
        out.extend_from_slice(&(m.len() as u16).to_be_bytes());
        out.extend_from_slice(&m);
    }
    out
}

fn tls_pair() -> (Vec<u8>, Vec<u8>) {
    let sni = b"service.example.com";
    let mut ext = vec![0, 0];
    ext.extend_from_slice(&((sni.len() + 5) as u16).to_be_bytes());
    ext.extend_from_slice(&((sni.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    ext.extend_from_slice(sni);
    ext.extend_from_slice(&[0, 16, 0, 14, 0, 12, 2, b'h', b'2', 8]);
    ext.extend_from_slice(b"http/1.1");
    let mut body = vec![3, 3];
    body.extend_from_slice(&[1; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 4, 0x13, 0x01, 0xc0, 0x2f, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut c = vec![22, 3, 1];
    c.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    c.extend_from_slice(&hs);
    let mut sh = vec![3, 3];
    sh.extend_from_slice(&[2; 32]);
    sh.extend_from_slice(&[0, 0x13, 0x01, 0, 0, 6, 0, 43, 0, 2, 3, 4]);
    let mut s = vec![22, 3, 3, 0, (sh.len() + 4) as u8, 2, 0, 0, sh.len() as u8];
    s.extend_from_slice(&sh);
    (c, s)
}

fn segments(len: usize, seg: usize, shuffle: bool) -> Vec<(u32, usize, usize)> {
    let mut v: Vec<(u32, usize, usize)> = (0..len)
        .step_by(seg)
        .map(|o| (1 + o as u32, o, seg.min(len - o)))
        .collect();
    if shuffle {
        // Deterministic reordering: swap neighbours, duplicate every fifth segment.
        for i in (0..v.len().saturating_sub(1)).step_by(2) {
            v.swap(i, i + 1);
        }
        let dups: Vec<_> = v.iter().step_by(5).copied().collect();
        v.extend(dups);
    }
    v
}

fn reassemble(stream: &[u8], segs: &[(u32, usize, usize)]) -> usize {
    let mut h = HalfStream::new(TcpLimits::default());
    let mut n = 0;
    h.segment(0, 0, 0x02, &[], 0, &mut |_| {});
    for (seq, off, len) in segs {
        h.segment(
            0,
            *seq,
            0x10,
            &stream[*off..off + len],
            *len as u32,
            &mut |c| {
                if let fathom_l7::capture::tcp::Chunk::Data { bytes, .. } = c {
                    n += bytes.len();
                }
            },
        );
    }
    h.flush(&mut |_| {});
    n
}

fn synthetic_capture() -> (Vec<u8>, u64) {
    let (c, s) = http_streams();
    let mut w = PcapWriter::new(Vec::new(), 101, 65535).expect("writer");
    let mut packets = 0;
    let mut seqs = [1000u32, 9000u32];
    for (i, (a, b)) in c.chunks(REQ.len()).zip(s.chunks(RESP.len())).enumerate() {
        for (dir, data) in [(0usize, a), (1, b)] {
            let (src, dst, sp, dp) = if dir == 0 {
                ([10, 0, 0, 1], [10, 0, 0, 2], 40000u16, 80u16)
            } else {
                ([10, 0, 0, 2], [10, 0, 0, 1], 80, 40000)
            };
            let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0];
            p[2..4].copy_from_slice(&((40 + data.len()) as u16).to_be_bytes());
            p.extend_from_slice(&src);
            p.extend_from_slice(&dst);
            p.extend_from_slice(&sp.to_be_bytes());
            p.extend_from_slice(&dp.to_be_bytes());
            p.extend_from_slice(&seqs[dir].to_be_bytes());
            p.extend_from_slice(&seqs[1 - dir].to_be_bytes());
            p.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
            p.extend_from_slice(data);
            seqs[dir] = seqs[dir].wrapping_add(data.len() as u32);
            w.write_packet(
                1_700_000_000_000_000_000 + i as u64 * 1000 + dir as u64,
                p.len() as u32,
                &p,
            )
            .expect("write");
            packets += 1;
        }
    }
    (w.finish().expect("finish"), packets)
}

fn benches(c: &mut Criterion) {
    let (cs, ss) = http_streams();
    let mut g = c.benchmark_group("http1");
    g.throughput(Throughput::Bytes((cs.len() + ss.len()) as u64));
    g.bench_function("parser_whole", |b| {
        b.iter(|| run_http(black_box(&cs), black_box(&ss), usize::MAX))
    });
    g.bench_function("parser_16B_chunks", |b| {
        b.iter(|| run_http(black_box(&cs), black_box(&ss), 16))
    });
    g.bench_function("baseline_httparse_request_heads", |b| {
        b.iter(|| httparse_only(black_box(&cs)))
    });
    g.finish();

    let dns = dns_stream();
    let mut g = c.benchmark_group("dns");
    g.throughput(Throughput::Bytes(dns.len() as u64));
    g.bench_function("tcp_stream_decode", |b| {
        b.iter(|| {
            let mut p = DnsParser::new(DnsTransport::Tcp);
            let mut out = Vec::new();
            p.feed(Direction::ServerToClient, 1, black_box(&dns), &mut out);
            out.len()
        })
    });
    g.bench_function("baseline_copy", |b| b.iter(|| black_box(dns.clone()).len()));
    g.finish();

    let (tc, ts) = tls_pair();
    let mut g = c.benchmark_group("tls");
    g.throughput(Throughput::Bytes((tc.len() + ts.len()) as u64));
    g.bench_function("hello_pair", |b| {
        b.iter(|| {
            let mut p = TlsParser::new();
            let mut out = Vec::new();
            p.feed(Direction::ClientToServer, 1, black_box(&tc), &mut out);
            p.feed(Direction::ServerToClient, 2, black_box(&ts), &mut out);
            out.len()
        })
    });
    g.finish();

    let stream: Vec<u8> = (0..256 * 1024).map(|i| i as u8).collect();
    let in_order = segments(stream.len(), 1400, false);
    let shuffled = segments(stream.len(), 1400, true);
    let mut g = c.benchmark_group("tcp_reassembly");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("in_order", |b| {
        b.iter(|| reassemble(black_box(&stream), &in_order))
    });
    g.bench_function("reordered_with_duplicates", |b| {
        b.iter(|| reassemble(black_box(&stream), &shuffled))
    });
    g.finish();

    let (cap, packets) = synthetic_capture();
    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(packets));
    g.bench_function("http_capture", |b| {
        b.iter(|| {
            replay_reader(black_box(&cap[..]), &ReplayOptions::default())
                .map(|r| r.records.len())
                .unwrap_or(0)
        })
    });
    g.finish();
}

/// Seconds per iteration of `f`, best of a few short runs.
fn time<F: FnMut() -> usize>(mut f: F) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut k = 0;
        for _ in 0..20 {
            k += f();
        }
        black_box(k);
        best = best.min(start.elapsed().as_secs_f64() / 20.0);
    }
    best
}

fn ratios() {
    let (cs, ss) = http_streams();
    let whole = time(|| run_http(&cs, &ss, usize::MAX));
    let bytewise = time(|| run_http(&cs, &ss, 1));
    let base = time(|| httparse_only(&cs));
    let stream: Vec<u8> = (0..256 * 1024).map(|i| i as u8).collect();
    let ordered = time(|| reassemble(&stream, &segments(stream.len(), 1400, false)));
    let shuffled = time(|| reassemble(&stream, &segments(stream.len(), 1400, true)));
    println!("ratios (same run):");
    println!(
        "  http1 full engine / httparse request heads alone: {:.2}x",
        whole / base
    );
    println!(
        "  http1 one byte at a time / whole:                   {:.2}x",
        bytewise / whole
    );
    println!(
        "  tcp reassembly reordered+dups / in order:           {:.2}x",
        shuffled / ordered
    );
}

criterion_group! {
    name = core;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}

fn main() {
    core();
    ratios();
    Criterion::default().configure_from_args().final_summary();
}
