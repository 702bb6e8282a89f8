//! Throughput of the HTTP/2, Redis, Kafka, PostgreSQL and MySQL parsers on synthetic
//! connections, each next to a baseline measured in the same run (copying the same bytes,
//! which is the floor any observer pays), plus HPACK decoding with `loona-hpack` (the exact
//! path) against the tolerant decoder (the path after a mid-stream pickup), and each parser
//! fed one byte at a time against whole.
//!
//! Figures are printed (criterion, then a ratio table); nothing asserts on wall time.

use std::hint::black_box;
use std::time::Instant;

use bytes::BytesMut;
use criterion::{criterion_group, Criterion, Throughput};
use fathom_l7::http2::hpack::{HeaderDecoder, Tolerant};
use fathom_l7::http2::Http2Parser;
use fathom_l7::kafka::KafkaParser;
use fathom_l7::mysql::MysqlParser;
use fathom_l7::parser::{Direction, ProtocolParser};
use fathom_l7::postgres::PostgresParser;
use fathom_l7::redis::RedisParser;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

const N: usize = 200;

/// A connection: (direction, bytes) in order, one exchange after another.
type Conn = Vec<(Direction, Vec<u8>)>;

fn bytes_of(c: &Conn) -> u64 {
    c.iter().map(|(_, b)| b.len() as u64).sum()
}

fn run<P: ProtocolParser>(mut p: P, conn: &Conn, chunk: usize) -> usize {
    let mut out = Vec::with_capacity(N);
    for (dir, b) in conn {
        for piece in b.chunks(chunk.max(1)) {
            p.feed(*dir, 1, piece, &mut out);
        }
    }
    p.finish(2, &mut out);
    out.len()
}

fn copy(conn: &Conn) -> usize {
    let mut sink = Vec::with_capacity(64 * 1024);
    for (_, b) in conn {
        sink.clear();
        sink.extend_from_slice(b);
        black_box(&sink);
    }
    sink.len()
}

fn redis_conn() -> Conn {
    let mut c = Vec::new();
    for i in 0..N {
        let key = format!("user:{i}");
        let cmd = format!(
            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$5\r\nvalue\r\n*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n",
            key.len(),
            key.len()
        );
        c.push((Direction::ClientToServer, cmd.into_bytes()));
        c.push((
            Direction::ServerToClient,
            b"+OK\r\n$5\r\nvalue\r\n".to_vec(),
        ));
    }
    c
}

fn pg_msg(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ty];
    v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn postgres_conn() -> Conn {
    let mut c = Vec::new();
    for i in 0..N {
        c.push((
            Direction::ClientToServer,
            pg_msg(
                b'Q',
                format!("SELECT id, name FROM items WHERE id = {i}\0").as_bytes(),
            ),
        ));
        let mut r = pg_msg(
            b'T',
            b"\0\x02id\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0name\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        );
        for _ in 0..3 {
            r.extend(pg_msg(b'D', b"\0\x02\0\0\0\x0242\0\0\0\x05apple"));
        }
        r.extend(pg_msg(b'C', b"SELECT 3\0"));
        r.extend(pg_msg(b'Z', b"I"));
        c.push((Direction::ServerToClient, r));
    }
    c
}

fn my_pkt(seq: u8, p: &[u8]) -> Vec<u8> {
    let mut v = (p.len() as u32).to_le_bytes()[..3].to_vec();
    v.push(seq);
    v.extend_from_slice(p);
    v
}

fn mysql_conn() -> Conn {
    let mut c = Vec::new();
    let coldef = |n: &str| {
        let mut v = Vec::new();
        for s in ["def", "db", "t", "t", n, n] {
            v.push(s.len() as u8);
            v.extend_from_slice(s.as_bytes());
        }
        v.extend_from_slice(&[0x0c, 33, 0, 0xff, 0, 0, 0, 0xfd, 0, 0, 0, 0, 0]);
        v
    };
    for i in 0..N {
        c.push((
            Direction::ClientToServer,
            my_pkt(
                0,
                format!("\x03SELECT id, name FROM items WHERE id = {i}").as_bytes(),
            ),
        ));
        let mut r = my_pkt(1, &[2]);
        r.extend(my_pkt(2, &coldef("id")));
        r.extend(my_pkt(3, &coldef("name")));
        r.extend(my_pkt(4, &[0xfe, 0, 0, 2, 0]));
        for s in 5..8 {
            r.extend(my_pkt(s, b"\x0242\x05apple"));
        }
        r.extend(my_pkt(8, &[0xfe, 0, 0, 2, 0]));
        c.push((Direction::ServerToClient, r));
    }
    c
}

fn kafka_frame(header: impl FnOnce(&mut BytesMut), body: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut b = BytesMut::new();
    header(&mut b);
    body(&mut b);
    let mut v = (b.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&b);
    v
}

fn kafka_conn() -> Conn {
    let mut c = Vec::new();
    for i in 0..N as i32 {
        let topic = TopicName(StrBytes::from_static_str("orders"));
        let req = ProduceRequest::default().with_acks(1).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic.clone())
                .with_partition_data(vec![
                    PartitionProduceData::default().with_records(Some(vec![7u8; 512].into()))
                ]),
        ]);
        let resp = ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_name(topic)
            .with_partition_responses(vec![PartitionProduceResponse::default()])]);
        c.push((
            Direction::ClientToServer,
            kafka_frame(
                |b| {
                    let h = RequestHeader::default()
                        .with_request_api_key(0)
                        .with_request_api_version(9)
                        .with_correlation_id(i)
                        .with_client_id(Some(StrBytes::from_static_str("bench")));
                    let _ = h.encode(b, 2);
                },
                |b| {
                    let _ = req.encode(b, 9);
                },
            ),
        ));
        c.push((
            Direction::ServerToClient,
            kafka_frame(
                |b| {
                    let _ = ResponseHeader::default()
                        .with_correlation_id(i)
                        .encode(b, 1);
                },
                |b| {
                    let _ = resp.encode(b, 9);
                },
            ),
        ));
    }
    c
}

fn h2_frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    v.extend_from_slice(&[ty, flags]);
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Request header blocks for the HTTP/2 connection (this encoder writes plain literals and
/// indexes new names, so later blocks refer to the dynamic table).
fn request_blocks() -> Vec<Vec<u8>> {
    let mut enc = loona_hpack::Encoder::new();
    (0..N)
        .map(|i| {
            let path = format!("/api/v1/items/{i}");
            enc.encode([
                (&b":method"[..], &b"GET"[..]),
                (b":scheme", b"https"),
                (b":path", path.as_bytes()),
                (b":authority", b"svc.example.com"),
                (b"user-agent", b"bench/1.0"),
                (b"x-request-id", b"0123456789abcdef"),
            ])
        })
        .collect()
}

/// RFC 7541 C.4: three requests with Huffman-coded literals sharing one dynamic table, the
/// way browsers and nghttp2 encode (Huffman decoding is where HPACK decoders spend time).
fn huffman_blocks() -> Vec<Vec<u8>> {
    let hex = |s: &str| {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
            .collect::<Vec<u8>>()
    };
    vec![
        hex("828684418cf1e3c2e5f23a6ba0ab90f4ff"),
        hex("828684be5886a8eb10649cbf"),
        hex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"),
    ]
}

fn http2_conn() -> Conn {
    let mut c = vec![(
        Direction::ClientToServer,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0".to_vec(),
    )];
    c.push((Direction::ServerToClient, b"\0\0\0\x04\0\0\0\0\0".to_vec()));
    let mut senc = loona_hpack::Encoder::new();
    for (i, block) in request_blocks().into_iter().enumerate() {
        let id = 2 * i as u32 + 1;
        c.push((Direction::ClientToServer, h2_frame(1, 5, id, &block)));
        let head = senc.encode([
            (&b":status"[..], &b"200"[..]),
            (b"content-type", b"application/json"),
            (b"content-length", b"27"),
        ]);
        let mut r = h2_frame(1, 4, id, &head);
        r.extend(h2_frame(0, 1, id, b"{\"id\":1,\"name\":\"something\"}"));
        c.push((Direction::ServerToClient, r));
    }
    c
}

type Case = (&'static str, fn() -> Conn, fn(&Conn, usize) -> usize);

fn cases() -> Vec<Case> {
    vec![
        ("redis", redis_conn, |c, k| run(RedisParser::new(), c, k)),
        ("postgres", postgres_conn, |c, k| {
            run(PostgresParser::new(), c, k)
        }),
        ("mysql", mysql_conn, |c, k| run(MysqlParser::new(), c, k)),
        ("kafka", kafka_conn, |c, k| run(KafkaParser::new(), c, k)),
        ("http2", http2_conn, |c, k| run(Http2Parser::new(), c, k)),
    ]
}

/// Decodes the C.4 sequence `N / 3` times, each with a fresh decoder (one connection each).
fn hpack_exact(blocks: &[Vec<u8>]) -> usize {
    let mut n = 0;
    for _ in 0..N / 3 {
        let mut d = HeaderDecoder::new(4096);
        for b in blocks {
            n += d.decode(b, |_, _| {}).decoded;
        }
    }
    n
}

fn hpack_tolerant(blocks: &[Vec<u8>]) -> usize {
    let mut n = 0;
    for _ in 0..N / 3 {
        let mut d = Tolerant::new(4096);
        for b in blocks {
            n += d.decode(b, 4096, |_, _| {}).decoded;
        }
    }
    n
}

fn benches(c: &mut Criterion) {
    for (name, make, parse) in cases() {
        let conn = make();
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(bytes_of(&conn)));
        g.bench_function("parse", |b| b.iter(|| parse(black_box(&conn), usize::MAX)));
        g.bench_function("copy_baseline", |b| b.iter(|| copy(black_box(&conn))));
        g.finish();
    }
    let blocks = huffman_blocks();
    let mut g = c.benchmark_group("hpack");
    g.throughput(Throughput::Elements((N / 3 * blocks.len()) as u64));
    g.bench_function("loona_exact", |b| {
        b.iter(|| hpack_exact(black_box(&blocks)))
    });
    g.bench_function("tolerant", |b| {
        b.iter(|| hpack_tolerant(black_box(&blocks)))
    });
    g.finish();
}

/// Seconds per iteration of `f`, best of a few short runs.
fn time<F: FnMut() -> usize>(mut f: F) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut k = 0;
        for _ in 0..10 {
            k += f();
        }
        black_box(k);
        best = best.min(start.elapsed().as_secs_f64() / 10.0);
    }
    best
}

fn ratios() {
    println!("ratios (same run):");
    for (name, make, parse) in cases() {
        let conn = make();
        let whole = time(|| parse(&conn, usize::MAX));
        let bytewise = time(|| parse(&conn, 1));
        let base = time(|| copy(&conn));
        let mb_s = bytes_of(&conn) as f64 / whole / 1e6;
        println!("  {name:9} parse / copy {:7.1}x   one byte at a time / whole {:6.1}x   {mb_s:8.1} MB/s", whole / base, bytewise / whole);
    }
    let blocks = huffman_blocks();
    let per_block = (N / 3 * blocks.len()) as f64;
    let exact = time(|| hpack_exact(&blocks));
    let tolerant = time(|| hpack_tolerant(&blocks));
    println!(
        "  hpack     loona-hpack {:.2} us/block, tolerant {:.2} us/block: loona / tolerant {:.1}x",
        exact / per_block * 1e6,
        tolerant / per_block * 1e6,
        exact / tolerant
    );
}

criterion_group! {
    name = protocols;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}

fn main() {
    protocols();
    ratios();
    Criterion::default().configure_from_args().final_summary();
}
