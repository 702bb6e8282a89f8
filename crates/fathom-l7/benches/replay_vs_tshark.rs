//! `fathom replay` against `tshark -r` on the same large capture, in the same run.
//!
//! Builds synthetic captures (Ethernet/IPv4, correct checksums, MSS-sized TCP segments with
//! handshakes, ACKs and FINs) of HTTP/1.1 (keep-alive, JSON bodies, some chunked, 404s and
//! POSTs), DNS over UDP (a socket per lookup with its A and AAAA query, some NXDOMAIN),
//! Redis (SET/GET/INCR/HGETALL/errors), PostgreSQL (startup, queries with rows, errors) and
//! MySQL (handshake, result sets, errors), then:
//!
//! 1. per protocol: Fathom's replay engine (`replay_file`, what `fathom replay FILE` runs)
//!    on that protocol's capture: records/s, capture MB/s and payload MB/s, and tshark's
//!    time on the same capture with the ratio;
//! 2. on all of them in one capture: Fathom vs `tshark -n -r FILE -T fields -e …` extracting
//!    the comparable L7 fields (method, URI, status, qname, rcode, Redis bulk strings, SQL
//!    text, error codes): wall time of each and the ratio.
//!
//! Fathom runs as `fathom replay` does by default, with its flows sharded over one thread per
//! core (the count is printed), and on one thread (`--threads 1`; the two reports are checked
//! equal), whose ratio is printed too: tshark uses one thread.
//! The figures are printed; nothing asserts on wall time (record counts are checked: a bench
//! of a capture Fathom misreads would be meaningless). Fathom is timed best of 3 runs,
//! tshark once (it is the slow side). Without tshark the comparison is skipped.
//!
//! Scale: `FATHOM_BENCH_EXCHANGES` (default 200000, split over the protocols);
//! `FATHOM_BENCH_KEEP=1` keeps the captures (in the temp dir, printed);
//! `FATHOM_BENCH_REPLAY=FILE` only replays FILE (best of `FATHOM_BENCH_RUNS`, default 5, on
//! `FATHOM_BENCH_THREADS` threads, default 1, 0: one per core), for profiling. Run by
//! `cargo bench -p fathom-l7 --bench replay_vs_tshark` / `scripts/bench-replay.sh`; without
//! `--bench` (cargo test --benches) it runs a tiny smoke version.

/// The `fathom` binary runs on mimalloc; the bench measures the engine the way it ships.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fathom_l7::capture::link::linktype;
use fathom_l7::capture::writer::PcapWriter;
use fathom_l7::replay::{replay_file, ReplayOptions, ReplayReport};
use fathom_model::l7::L7Protocol;

// ---------------------------------------------------------------------------------------
// Packet building

fn ones_complement(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
/// Ethernet payload of 1500 minus IPv4 and TCP headers with timestamps, as on a real LAN.
const MSS: usize = 1448;

/// A capture being written, with a clock that advances a little per packet.
struct Cap {
    w: PcapWriter<BufWriter<File>>,
    ts: u64,
    packets: u64,
    payload: u64,
    buf: Vec<u8>,
}

impl Cap {
    fn create(path: &Path) -> Cap {
        let f = BufWriter::with_capacity(1 << 20, File::create(path).expect("create capture"));
        Cap {
            w: PcapWriter::new(f, linktype::ETHERNET, 65535).expect("pcap header"),
            ts: 1_700_000_000_000_000_000,
            packets: 0,
            payload: 0,
            buf: Vec::with_capacity(2048),
        }
    }

    /// One Ethernet/IPv4 frame carrying `l4` (a TCP or UDP header) and `data`.
    fn frame(&mut self, proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8], data: &[u8]) {
        let b = &mut self.buf;
        b.clear();
        b.extend_from_slice(&[
            0x02, 0, 0, 0, 0, dst[3], 0x02, 0, 0, 0, 0, src[3], 0x08, 0x00,
        ]);
        let total = (20 + l4.len() + data.len()) as u16;
        let ip_at = b.len();
        b.extend_from_slice(&[0x45, 0]);
        b.extend_from_slice(&total.to_be_bytes());
        b.extend_from_slice(&(self.packets as u16).to_be_bytes());
        b.extend_from_slice(&[0x40, 0, 64, proto, 0, 0]);
        b.extend_from_slice(&src);
        b.extend_from_slice(&dst);
        let sum = fold(ones_complement(0, &b[ip_at..ip_at + 20]));
        b[ip_at + 10..ip_at + 12].copy_from_slice(&sum.to_be_bytes());
        let l4_at = b.len();
        b.extend_from_slice(l4);
        b.extend_from_slice(data);
        // Pseudo-header, then the segment; the checksum field sits at 16 (TCP) or 6 (UDP).
        let mut pseudo = ones_complement(0, &src);
        pseudo = ones_complement(pseudo, &dst);
        pseudo += u32::from(proto) + u32::from((l4.len() + data.len()) as u16);
        let sum = fold(ones_complement(pseudo, &b[l4_at..]));
        let at = l4_at + if proto == TCP { 16 } else { 6 };
        b[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        self.ts += 7_000;
        self.packets += 1;
        self.payload += data.len() as u64;
        let len = b.len() as u32;
        self.w
            .write_packet(self.ts, len, &self.buf)
            .expect("write packet");
    }

    fn udp(&mut self, src: ([u8; 4], u16), dst: ([u8; 4], u16), data: &[u8]) {
        let mut h = [0u8; 8];
        h[0..2].copy_from_slice(&src.1.to_be_bytes());
        h[2..4].copy_from_slice(&dst.1.to_be_bytes());
        h[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        self.frame(UDP, src.0, dst.0, &h, data);
    }

    fn finish(self) -> (u64, u64) {
        self.w.finish().expect("flush capture");
        (self.packets, self.payload)
    }
}

/// One TCP connection: sequence numbers per direction (0: client → server).
struct Tcp {
    ends: [([u8; 4], u16); 2],
    seq: [u32; 2],
}

impl Tcp {
    fn open(cap: &mut Cap, client: ([u8; 4], u16), server: ([u8; 4], u16)) -> Tcp {
        let mut t = Tcp {
            ends: [client, server],
            seq: [0x1000_0000 ^ u32::from(client.1) << 8, 0x7000_0000],
        };
        t.segment(cap, 0, SYN, &[]);
        t.seq[0] = t.seq[0].wrapping_add(1);
        t.segment(cap, 1, SYN | ACK, &[]);
        t.seq[1] = t.seq[1].wrapping_add(1);
        t.segment(cap, 0, ACK, &[]);
        t
    }

    fn segment(&mut self, cap: &mut Cap, dir: usize, flags: u8, data: &[u8]) {
        let (src, dst) = (self.ends[dir], self.ends[1 - dir]);
        let mut h = [0u8; 20];
        h[0..2].copy_from_slice(&src.1.to_be_bytes());
        h[2..4].copy_from_slice(&dst.1.to_be_bytes());
        h[4..8].copy_from_slice(&self.seq[dir].to_be_bytes());
        let ack = if flags & ACK != 0 {
            self.seq[1 - dir]
        } else {
            0
        };
        h[8..12].copy_from_slice(&ack.to_be_bytes());
        h[12] = 0x50;
        h[13] = flags;
        h[14..16].copy_from_slice(&0xfaf0u16.to_be_bytes());
        cap.frame(TCP, src.0, dst.0, &h, data);
        self.seq[dir] = self.seq[dir].wrapping_add(data.len() as u32);
    }

    /// `data` from `dir` in MSS-sized segments (PSH on the last), acknowledged by the peer.
    fn send(&mut self, cap: &mut Cap, dir: usize, data: &[u8]) {
        let n = data.chunks(MSS).count();
        for (i, c) in data.chunks(MSS).enumerate() {
            let flags = if i + 1 == n { ACK | PSH } else { ACK };
            self.segment(cap, dir, flags, c);
        }
        self.segment(cap, 1 - dir, ACK, &[]);
    }

    fn close(mut self, cap: &mut Cap) {
        self.segment(cap, 0, FIN | ACK, &[]);
        self.seq[0] = self.seq[0].wrapping_add(1);
        self.segment(cap, 1, FIN | ACK, &[]);
        self.seq[1] = self.seq[1].wrapping_add(1);
        self.segment(cap, 0, ACK, &[]);
    }
}

fn client(i: usize) -> ([u8; 4], u16) {
    (
        [10, 1, (i / 250 % 250) as u8, (i % 250) as u8 + 2],
        32768 + (i % 28000) as u16,
    )
}

// ---------------------------------------------------------------------------------------
// Protocol conversations. Each returns the number of records Fathom must report.

fn http(cap: &mut Cap, exchanges: usize) -> u64 {
    let server = ([10, 0, 0, 80], 80);
    let per_conn = 8;
    let mut done = 0;
    let mut conn = 0;
    while done < exchanges {
        let mut t = Tcp::open(cap, client(conn), server);
        for k in 0..per_conn.min(exchanges - done) {
            let i = done + k;
            let (req, resp) = match i % 10 {
                0 => {
                    let body = format!("{{\"name\":\"item-{i}\",\"tags\":[\"a\",\"b\"],\"n\":{i}}}");
                    (
                        format!(
                            "POST /api/v1/items HTTP/1.1\r\nHost: shop.svc\r\nUser-Agent: bench/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        ),
                        "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"ok\":true}\n".to_string(),
                    )
                }
                1 => (
                    format!("GET /api/v1/missing/{i} HTTP/1.1\r\nHost: shop.svc\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n"),
                    "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 22\r\n\r\n<h1>404 Not Found</h1>".to_string(),
                ),
                2 => {
                    // Chunked, spanning several segments.
                    let chunk = "x".repeat(1000);
                    let mut body = String::new();
                    for _ in 0..4 {
                        body += &format!("{:x}\r\n{chunk}\r\n", chunk.len());
                    }
                    body += "0\r\n\r\n";
                    (
                        format!("GET /api/v1/export?page={i} HTTP/1.1\r\nHost: shop.svc\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n"),
                        format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n{body}"),
                    )
                }
                _ => {
                    let items: Vec<String> = (0..(i % 7 + 1))
                        .map(|j| format!("{{\"id\":{},\"name\":\"item-{j}\",\"price\":{}.99}}", i + j, j * 3))
                        .collect();
                    let body = format!("[{}]", items.join(","));
                    (
                        format!("GET /api/v1/items/{i}?fields=id,name,price HTTP/1.1\r\nHost: shop.svc\r\nUser-Agent: bench/1.0\r\nAccept: application/json\r\n\r\n"),
                        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-cache\r\n\r\n{body}", body.len()),
                    )
                }
            };
            t.send(cap, 0, req.as_bytes());
            t.send(cap, 1, resp.as_bytes());
        }
        done += per_conn.min(exchanges - done);
        conn += 1;
        t.close(cap);
    }
    exchanges as u64
}

fn dns_name(i: usize) -> Vec<u8> {
    let mut q = Vec::new();
    for label in [
        format!("svc-{}", i % 997).as_str(),
        "prod",
        "svc",
        "cluster",
        "local",
    ] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q
}

/// DNS over UDP as stub resolvers send it: one socket per lookup, carrying the A and the
/// AAAA query for the name (glibc's getaddrinfo, Go, musl), so two exchanges per flow.
fn dns(cap: &mut Cap, exchanges: usize) -> u64 {
    let server = ([10, 0, 0, 53], 53);
    for i in 0..exchanges {
        let lookup = i / 2;
        let id = (lookup as u16)
            .wrapping_mul(7919)
            .wrapping_add((i % 2) as u16);
        let name = dns_name(lookup);
        let nx = lookup % 8 == 0;
        let aaaa = i % 2 == 1;
        let qtype: u16 = if aaaa { 28 } else { 1 };
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        q.extend_from_slice(&name);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        let mut r = id.to_be_bytes().to_vec();
        let answers: u16 = if nx { 0 } else { 2 };
        r.extend_from_slice(&[0x81, if nx { 0x83 } else { 0x80 }, 0, 1]);
        r.extend_from_slice(&answers.to_be_bytes());
        r.extend_from_slice(&[0, 0, 0, 0]);
        r.extend_from_slice(&name);
        r.extend_from_slice(&qtype.to_be_bytes());
        r.extend_from_slice(&[0, 1]);
        for k in 0..answers {
            r.extend_from_slice(&[0xc0, 12]);
            r.extend_from_slice(&qtype.to_be_bytes());
            r.extend_from_slice(&[0, 1, 0, 0, 0, 30]);
            if aaaa {
                r.extend_from_slice(&[
                    0, 16, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, k as u8,
                ]);
            } else {
                r.extend_from_slice(&[0, 4, 10, 96, (lookup % 250) as u8, k as u8]);
            }
        }
        let c = client(lookup);
        cap.udp(c, server, &q);
        cap.udp(server, c, &r);
    }
    exchanges as u64
}

fn resp_cmd(args: &[&str]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    v
}

fn redis(cap: &mut Cap, exchanges: usize) -> u64 {
    let server = ([10, 0, 0, 63], 6379);
    let per_conn = 50;
    let value = "v".repeat(120);
    let mut done = 0;
    let mut conn = 0;
    while done < exchanges {
        let mut t = Tcp::open(cap, client(conn + 50_000), server);
        for k in 0..per_conn.min(exchanges - done) {
            let i = done + k;
            let key = format!("session:{}", i % 4096);
            let (req, resp): (Vec<u8>, Vec<u8>) = match i % 6 {
                0 => (resp_cmd(&["SET", &key, &value]), b"+OK\r\n".to_vec()),
                1 => (
                    resp_cmd(&["GET", &key]),
                    format!("${}\r\n{value}\r\n", value.len()).into_bytes(),
                ),
                2 => (
                    resp_cmd(&["INCR", "counter"]),
                    format!(":{i}\r\n").into_bytes(),
                ),
                3 => (
                    resp_cmd(&["HGETALL", &key]),
                    b"*4\r\n$4\r\nuser\r\n$5\r\nalice\r\n$4\r\nrole\r\n$5\r\nadmin\r\n".to_vec(),
                ),
                4 => (resp_cmd(&["GET", "missing"]), b"$-1\r\n".to_vec()),
                _ => (
                    resp_cmd(&["LPUSH", &key, "x"]),
                    b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
                        .to_vec(),
                ),
            };
            t.send(cap, 0, &req);
            t.send(cap, 1, &resp);
        }
        done += per_conn.min(exchanges - done);
        conn += 1;
        t.close(cap);
    }
    exchanges as u64
}

fn pg(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ty];
    v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn postgres(cap: &mut Cap, exchanges: usize) -> u64 {
    let server = ([10, 0, 0, 54], 5432);
    let per_conn = 20;
    let mut records = 0;
    let mut done = 0;
    let mut conn = 0;
    while done < exchanges {
        let mut t = Tcp::open(cap, client(conn + 100_000), server);
        let mut startup = Vec::new();
        let params = b"user\0app\0database\0shop\0application_name\0bench\0\0";
        startup.extend_from_slice(&((params.len() + 8) as u32).to_be_bytes());
        startup.extend_from_slice(&196_608u32.to_be_bytes());
        startup.extend_from_slice(params);
        t.send(cap, 0, &startup);
        let mut hello = pg(b'R', &0u32.to_be_bytes());
        hello.extend(pg(b'S', b"server_version\x0015.4\0"));
        hello.extend(pg(b'K', &[0, 0, 0, 42, 0, 0, 1, 0]));
        hello.extend(pg(b'Z', b"I"));
        t.send(cap, 1, &hello);
        records += 1;
        for k in 0..per_conn.min(exchanges - done) {
            let i = done + k;
            if i % 10 == 9 {
                t.send(
                    cap,
                    0,
                    &pg(b'Q', format!("SELECT * FROM nosuch_{i}\0").as_bytes()),
                );
                let mut e = pg(
                    b'E',
                    format!("SERROR\0C42P01\0Mrelation \"nosuch_{i}\" does not exist\0\0")
                        .as_bytes(),
                );
                e.extend(pg(b'Z', b"I"));
                t.send(cap, 1, &e);
            } else {
                t.send(
                    cap,
                    0,
                    &pg(
                        b'Q',
                        format!("SELECT id, name FROM items WHERE shop_id = {i}\0").as_bytes(),
                    ),
                );
                let mut desc = vec![0, 2];
                for col in ["id", "name"] {
                    desc.extend_from_slice(col.as_bytes());
                    desc.extend_from_slice(&[
                        0, 0, 0, 0x40, 0, 0, 1, 0, 0, 0, 23, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0,
                    ]);
                }
                let mut r = pg(b'T', &desc);
                for row in 0..5 {
                    let id = format!("{}", i * 10 + row);
                    let name = format!("item-{row}");
                    let mut d = vec![0, 2];
                    for f in [&id, &name] {
                        d.extend_from_slice(&(f.len() as u32).to_be_bytes());
                        d.extend_from_slice(f.as_bytes());
                    }
                    r.extend(pg(b'D', &d));
                }
                r.extend(pg(b'C', b"SELECT 5\0"));
                r.extend(pg(b'Z', b"I"));
                t.send(cap, 1, &r);
            }
            records += 1;
        }
        t.send(cap, 0, &pg(b'X', &[]));
        records += 1;
        done += per_conn.min(exchanges - done);
        conn += 1;
        t.close(cap);
    }
    records
}

fn my(seq: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len() as u32;
    let mut v = vec![n as u8, (n >> 8) as u8, (n >> 16) as u8, seq];
    v.extend_from_slice(payload);
    v
}

fn lenenc_str(v: &mut Vec<u8>, s: &str) {
    v.push(s.len() as u8);
    v.extend_from_slice(s.as_bytes());
}

fn mysql(cap: &mut Cap, exchanges: usize) -> u64 {
    let server = ([10, 0, 0, 33], 3306);
    let per_conn = 20;
    let mut records = 0;
    let mut done = 0;
    let mut conn = 0;
    // CLIENT_PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | LONG_PASSWORD | TRANSACTIONS,
    // no DEPRECATE_EOF: classic EOF packets after column definitions and rows.
    let caps: u32 = 0x0000_0001 | 0x0000_0200 | 0x0000_2000 | 0x0000_8000 | 0x0008_0000;
    while done < exchanges {
        let mut t = Tcp::open(cap, client(conn + 150_000), server);
        let mut g = vec![10];
        g.extend_from_slice(b"10.11.6-MariaDB\0");
        g.extend_from_slice(&(conn as u32).to_le_bytes());
        g.extend_from_slice(b"abcdefgh\0");
        g.extend_from_slice(&(caps as u16).to_le_bytes());
        g.extend_from_slice(&[33, 2, 0]);
        g.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        g.push(21);
        g.extend_from_slice(&[0; 10]);
        g.extend_from_slice(b"ijklmnopqrst\0");
        g.extend_from_slice(b"mysql_native_password\0");
        t.send(cap, 1, &my(0, &g));
        let mut login = caps.to_le_bytes().to_vec();
        login.extend_from_slice(&(16u32 << 20).to_le_bytes());
        login.push(33);
        login.extend_from_slice(&[0; 23]);
        login.extend_from_slice(b"app\0");
        login.push(20);
        login.extend_from_slice(&[7; 20]);
        login.extend_from_slice(b"mysql_native_password\0");
        t.send(cap, 0, &my(1, &login));
        t.send(cap, 1, &my(2, &[0, 0, 0, 2, 0, 0, 0]));
        records += 1;
        for k in 0..per_conn.min(exchanges - done) {
            let i = done + k;
            let mut q = vec![3];
            if i % 10 == 9 {
                q.extend_from_slice(format!("SELECT * FROM nosuch_{i}").as_bytes());
                t.send(cap, 0, &my(0, &q));
                let mut e = vec![0xff];
                e.extend_from_slice(&1146u16.to_le_bytes());
                e.extend_from_slice(
                    format!("#42S02Table 'shop.nosuch_{i}' doesn't exist").as_bytes(),
                );
                t.send(cap, 1, &my(1, &e));
            } else {
                q.extend_from_slice(
                    format!("SELECT id, name FROM items WHERE shop_id = {i}").as_bytes(),
                );
                t.send(cap, 0, &my(0, &q));
                let mut r = my(1, &[2]);
                let mut seq = 2u8;
                for col in ["id", "name"] {
                    let mut c = Vec::new();
                    for s in ["def", "shop", "items", "items", col, col] {
                        lenenc_str(&mut c, s);
                    }
                    c.extend_from_slice(&[0x0c, 33, 0, 0, 1, 0, 0xfd, 0, 0, 0, 0, 0]);
                    r.extend(my(seq, &c));
                    seq += 1;
                }
                r.extend(my(seq, &[0xfe, 0, 0, 2, 0]));
                seq += 1;
                for row in 0..5 {
                    let mut d = Vec::new();
                    lenenc_str(&mut d, &format!("{}", i * 10 + row));
                    lenenc_str(&mut d, &format!("item-{row}"));
                    r.extend(my(seq, &d));
                    seq += 1;
                }
                r.extend(my(seq, &[0xfe, 0, 0, 2, 0]));
                t.send(cap, 1, &r);
            }
            records += 1;
        }
        t.send(cap, 0, &my(0, &[1]));
        records += 1;
        done += per_conn.min(exchanges - done);
        conn += 1;
        t.close(cap);
    }
    records
}

// ---------------------------------------------------------------------------------------
// Measuring

struct Built {
    name: &'static str,
    protocol: L7Protocol,
    path: PathBuf,
    packets: u64,
    payload: u64,
    records: u64,
}

type Gen = fn(&mut Cap, usize) -> u64;

fn build(dir: &Path, name: &'static str, protocol: L7Protocol, gen: Gen, n: usize) -> Built {
    let path = dir.join(format!("{name}.pcap"));
    let mut cap = Cap::create(&path);
    let records = gen(&mut cap, n);
    let (packets, payload) = cap.finish();
    Built {
        name,
        protocol,
        path,
        packets,
        payload,
        records,
    }
}

/// Best of `runs` replays on `threads` flow threads (0: one per core; the least disturbed by
/// other load), and the report of the last.
fn time_fathom(path: &Path, runs: usize, threads: usize) -> (Duration, ReplayReport) {
    let mut best = Duration::MAX;
    let mut report = None;
    let opts = ReplayOptions {
        threads,
        ..ReplayOptions::default()
    };
    for _ in 0..runs {
        let t = Instant::now();
        let r = replay_file(path, &opts).expect("replay");
        best = best.min(t.elapsed());
        report = Some(r);
    }
    (best, report.expect("at least one run"))
}

fn mb(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The L7 fields tshark extracts in the comparison: what Fathom reports for these protocols.
const TSHARK_FIELDS: &[&str] = &[
    "frame.number",
    "http.request.method",
    "http.request.uri",
    "http.response.code",
    "dns.qry.name",
    "dns.flags.rcode",
    "resp.bulk_string.value",
    "resp.error",
    "pgsql.query",
    "pgsql.code",
    "mysql.query",
    "mysql.error_code",
];

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Wall time of `tshark -n -r FILE -T fields -e …` (output discarded), and its frame count.
fn time_tshark(path: &Path) -> Option<(Duration, u64)> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(path).args(["-T", "fields"]);
    for f in TSHARK_FIELDS {
        cmd.args(["-e", f]);
    }
    // Counting lines needs the output; it is read as it comes, like a consumer would.
    let t = Instant::now();
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    let d = t.elapsed();
    if !out.status.success() {
        return None;
    }
    let frames = out.stdout.iter().filter(|&&b| b == b'\n').count() as u64;
    Some((d, frames))
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    // For profiling (`perf record` on this binary): replay one existing capture a few times.
    if let Some(path) = std::env::var_os("FATHOM_BENCH_REPLAY") {
        let threads = std::env::var("FATHOM_BENCH_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let runs = std::env::var("FATHOM_BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5);
        let (d, report) = time_fathom(Path::new(&path), runs, threads);
        println!(
            "{} ({} threads): {} packets, {} L7 records, best of {runs}: {:.3} s",
            Path::new(&path).display(),
            ReplayOptions {
                threads,
                ..ReplayOptions::default()
            }
            .thread_count(),
            report.stats.packets,
            report.stats.l7_records,
            d.as_secs_f64()
        );
        return;
    }
    let total: usize = if full {
        std::env::var("FATHOM_BENCH_EXCHANGES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000)
    } else {
        // `cargo test --benches`: a smoke run that checks the captures and counts.
        2_000
    };
    let dir = std::env::temp_dir().join(format!("fathom-bench-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // Removes the (large) captures however main ends.
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            if std::env::var_os("FATHOM_BENCH_KEEP").is_none() {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
    let _cleanup = Cleanup(dir.clone());

    let t = Instant::now();
    let plan: [(&'static str, L7Protocol, Gen, usize); 5] = [
        ("http", L7Protocol::Http, http, total * 35 / 100),
        ("dns", L7Protocol::Dns, dns, total * 30 / 100),
        ("redis", L7Protocol::Redis, redis, total * 25 / 100),
        ("postgres", L7Protocol::Postgres, postgres, total * 5 / 100),
        ("mysql", L7Protocol::Mysql, mysql, total * 5 / 100),
    ];
    let built: Vec<Built> = plan
        .iter()
        .map(|(name, p, gen, n)| build(&dir, name, *p, *gen, *n))
        .collect();
    // The mixed capture: every protocol's conversations, one after the other.
    let mixed = dir.join("mixed.pcap");
    {
        let mut cap = Cap::create(&mixed);
        for (_, _, gen, n) in &plan {
            gen(&mut cap, *n);
        }
        cap.finish();
    }
    println!(
        "replay_vs_tshark: {total} exchanges, captures built in {:.1} s ({})",
        t.elapsed().as_secs_f64(),
        dir.display()
    );

    let runs = if full { 3 } else { 1 };
    let tshark = tshark_available();
    let threads = ReplayOptions {
        threads: 0,
        ..ReplayOptions::default()
    }
    .thread_count();
    println!(
        "fathom: \"1 thr\" on one thread (`--threads 1`); \"{threads} thr\": as `fathom replay` runs by default, flows sharded over {threads} threads (one per core)"
    );
    println!();
    println!(
        "{:<9} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10} {:>11} {:>9} {:>7} {:>8} {:>7}",
        "protocol",
        "packets",
        "records",
        "capture",
        "1 thr",
        "records/s",
        "capture/s",
        "L7 payload/s",
        "tshark",
        "ratio",
        format!("{threads} thr"),
        "ratio"
    );
    let mut all_records = 0;
    for b in &built {
        let (d, report) = time_fathom(&b.path, runs, 1);
        let (dn, report_n) = time_fathom(&b.path, runs, 0);
        assert!(
            report_n == report,
            "{}: one thread and {threads} differ",
            b.name
        );
        let got = report
            .stats
            .protocols
            .get(&b.protocol)
            .map_or(0, |s| s.records);
        assert_eq!(
            got, b.records,
            "{}: Fathom reported {got} records, the capture holds {}",
            b.name, b.records
        );
        all_records += got;
        let size = file_len(&b.path);
        // tshark on the protocol's capture alone shows where the overall ratio comes from.
        let (ts, ratio, ratio_n) = match tshark.then(|| time_tshark(&b.path)).flatten() {
            Some((td, _)) => (
                format!("{:.2}s", td.as_secs_f64()),
                format!("{:.1}x", td.as_secs_f64() / d.as_secs_f64()),
                format!("{:.1}x", td.as_secs_f64() / dn.as_secs_f64()),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:<9} {:>8} {:>8} {:>6.1}MB {:>7.3}s {:>10.0} {:>6.1}MB/s {:>7.1}MB/s {:>9} {:>7} {:>7.3}s {:>7}",
            b.name,
            b.packets,
            got,
            size as f64 / 1e6,
            d.as_secs_f64(),
            got as f64 / d.as_secs_f64(),
            mb(size, d),
            mb(b.payload, d),
            ts,
            ratio,
            dn.as_secs_f64(),
            ratio_n,
        );
    }

    let (fd, report) = time_fathom(&mixed, runs, 1);
    let (fdn, report_n) = time_fathom(&mixed, runs, 0);
    assert!(report_n == report, "mixed: one thread and {threads} differ");
    assert_eq!(
        report.stats.l7_records, all_records,
        "mixed capture records"
    );
    let size = file_len(&mixed);
    println!();
    println!(
        "mixed capture: {} packets, {:.1} MB, {} L7 records",
        report.stats.packets,
        size as f64 / 1e6,
        report.stats.l7_records
    );
    println!(
        "  fathom replay --threads 1 (best of {runs}):          {:>8.3} s  {:>9.0} packets/s  {:>7.1} MB/s",
        fd.as_secs_f64(),
        report.stats.packets as f64 / fd.as_secs_f64(),
        mb(size, fd)
    );
    println!(
        "  fathom replay ({threads} threads, the default, best of {runs}): {:>8.3} s  {:>9.0} packets/s  {:>7.1} MB/s",
        fdn.as_secs_f64(),
        report.stats.packets as f64 / fdn.as_secs_f64(),
        mb(size, fdn)
    );
    if !tshark {
        println!("  tshark not found: comparison skipped (install the tshark package)");
        return;
    }
    match time_tshark(&mixed) {
        Some((td, frames)) => {
            assert_eq!(frames, report.stats.packets, "tshark frames");
            println!(
                "  tshark -n -r -T fields (L7 fields, 1 run):           {:>8.3} s  {:>9.0} packets/s  {:>7.1} MB/s",
                td.as_secs_f64(),
                frames as f64 / td.as_secs_f64(),
                mb(size, td)
            );
            println!(
                "  ratio: fathom replay is {:.1}x faster than tshark on the same capture (target: 50x); on one thread {:.1}x",
                td.as_secs_f64() / fdn.as_secs_f64(),
                td.as_secs_f64() / fd.as_secs_f64()
            );
        }
        None => println!("  tshark failed on the capture: comparison skipped"),
    }
}
