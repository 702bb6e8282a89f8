//! l7.bpf.c for real: loopback sockets of this test process, payload events with exact bytes,
//! directions, roles and tuples; unknown protocols muted in the kernel. Needs root. Other
//! processes on the host are captured too, so every assertion filters on this process's pid.

use std::cell::RefCell;
use std::io::{IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::rc::Rc;
use std::time::{Duration, Instant};

use fathom_bpf::abi::l7::{L7Counter, L7_PROTO_DNS, L7_PROTO_HTTP, L7_PROTO_REDIS};
use fathom_bpf::l7::{L7Config, L7Event, L7EventKind, L7Role, L7Sensor};

fn sensor(cap: u32) -> L7Sensor {
    let cfg = L7Config {
        capture_bytes: cap,
        self_tgid: 0, // this test captures itself
        ..Default::default()
    };
    L7Sensor::load(&cfg).expect("load l7.bpf.c (are we root?)")
}

/// Events of this process, gathered until `until` says enough or 5 s pass.
fn collect(s: &L7Sensor, until: impl Fn(&[L7Event]) -> bool) -> Vec<L7Event> {
    let got = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&got);
    let me = std::process::id();
    let rb = s
        .ring_buffer(
            move |e| {
                if e.pid == me {
                    sink.borrow_mut().push(e.clone())
                }
            },
            || panic!("undecodable l7 record"),
        )
        .expect("ringbuf");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !until(&got.borrow()) {
        let _ = rb.poll(Duration::from_millis(50));
    }
    let _ = rb.poll(Duration::ZERO);
    drop(rb);
    Rc::try_unwrap(got)
        .map(|c| c.into_inner())
        .unwrap_or_default()
}

#[test]
fn http_exchange_over_loopback_is_captured_once_from_the_client() {
    let s = sensor(4096);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0);
        c.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    });
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let client_port = c.local_addr().unwrap().port();
    let req = b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n";
    // writev: the request split over two iovecs.
    let written = c
        .write_vectored(&[IoSlice::new(&req[..10]), IoSlice::new(&req[10..])])
        .unwrap();
    assert_eq!(written, req.len(), "loopback takes a small writev whole");
    let mut resp = [0u8; 256];
    let n = c.read(&mut resp).unwrap();
    server.join().unwrap();
    drop(c);

    let ev = collect(&s, |e| {
        e.iter().filter(|e| e.kind == L7EventKind::Data).count() >= 4
    });
    let data: Vec<&L7Event> = ev.iter().filter(|e| e.kind == L7EventKind::Data).collect();
    let client_out = data
        .iter()
        .find(|e| e.egress && e.local.port() == client_port)
        .expect("client write");
    assert_eq!(client_out.data, req);
    assert_eq!(client_out.ret, req.len() as i64);
    assert_eq!(client_out.role, L7Role::Client);
    assert_eq!(client_out.protocol_guess, L7_PROTO_HTTP);
    assert_eq!(client_out.remote.port(), port);
    assert!(!client_out.truncated);
    // The socket cookie is read from the socket, where the kernel stores it once a program
    // asked for it (proc.bpf.c's cgroup hooks do in the agent): 0 here, alone.

    // The server end's client is on this node: only the client end crosses the ring.
    assert!(
        !data.iter().any(|e| e.local.port() == port),
        "server end shipped although its client is local"
    );
    assert!(s.counter(L7Counter::PeerLocal) >= 1);

    let client_in = data
        .iter()
        .find(|e| !e.egress && e.local.port() == client_port)
        .expect("client read");
    assert_eq!(client_in.data, &resp[..n]);
    assert!(ev
        .iter()
        .any(|e| e.kind == L7EventKind::Close && e.fd == client_out.fd));
}

#[test]
fn truncation_is_flagged_and_counted_with_the_real_length() {
    let s = sensor(64);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut sink = Vec::new();
        let _ = c.read_to_end(&mut sink);
        sink.len()
    });
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let client_port = c.local_addr().unwrap().port();
    let mut body = b"POST /upload HTTP/1.1\r\nContent-Length: 1000\r\n\r\n".to_vec();
    body.extend(std::iter::repeat_n(b'x', 1000));
    c.write_all(&body).unwrap();
    drop(c);
    assert_eq!(server.join().unwrap(), body.len());
    let ev = collect(&s, |e| {
        e.iter().any(|e| e.egress && e.local.port() == client_port)
    });
    let w = ev
        .iter()
        .find(|e| e.egress && e.local.port() == client_port)
        .expect("client write");
    assert_eq!(w.data, &body[..64]);
    assert_eq!(w.ret, body.len() as i64);
    assert!(w.truncated);
    assert!(s.counter(L7Counter::Truncated) >= 1);
}

#[test]
fn unknown_protocol_costs_no_events() {
    let s = sensor(4096);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    const TOTAL: usize = 100 << 20;
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0;
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        n
    });
    let muted_before = s.counter(L7Counter::CallsMuted);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let client_port = c.local_addr().unwrap().port();
    // A binary protocol nobody knows: 0x00ff… framing.
    let chunk: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8 ^ 0xA5).collect();
    let mut sent = 0;
    while sent < TOTAL {
        c.write_all(&chunk).unwrap();
        sent += chunk.len();
    }
    drop(c);
    assert_eq!(server.join().unwrap(), TOTAL);
    // Nothing to wait for: collect for the full window and expect nothing of ours.
    let ev = collect(&s, |_| false);
    let ours: Vec<&L7Event> = ev
        .iter()
        .filter(|e| e.local.port() == client_port || e.remote.port() == client_port)
        .collect();
    assert!(
        ours.is_empty(),
        "unknown protocol shipped: {:?}",
        ours.first()
    );
    let muted = s.counter(L7Counter::CallsMuted) - muted_before;
    assert!(
        muted >= 2 * (TOTAL / 65536) as u64 - 2,
        "muted calls {muted}"
    );
}

#[test]
fn udp_dns_and_redis_are_shipped_by_guess() {
    let s = sensor(4096);
    // Redis over TCP.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut buf = [0u8; 128];
        let _ = c.read(&mut buf);
        c.write_all(b"+PONG\r\n").unwrap();
    });
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut buf = [0u8; 16];
    let _ = c.read(&mut buf);
    server.join().unwrap();
    let redis_port = c.local_addr().unwrap().port();
    drop(c);

    // DNS-shaped datagram to a local "server" bound on port 53 of a loopback address nobody
    // else uses.
    let srv = UdpSocket::bind("127.0.53.53:53").expect("bind 127.0.53.53:53");
    let cli = UdpSocket::bind("127.0.0.1:0").unwrap();
    let q = [
        0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1,
    ];
    cli.send_to(&q, "127.0.53.53:53").unwrap();
    let mut b = [0u8; 64];
    let (n, from) = srv.recv_from(&mut b).unwrap();
    assert_eq!(n, q.len());
    let cli_port = cli.local_addr().unwrap().port();

    let ev = collect(&s, |e| {
        e.iter()
            .filter(|e| e.protocol_guess == L7_PROTO_DNS)
            .count()
            >= 2
            && e.iter().any(|e| e.protocol_guess == L7_PROTO_REDIS)
    });
    let r = ev
        .iter()
        .find(|e| e.egress && e.local.port() == redis_port)
        .expect("redis command");
    assert_eq!(r.protocol_guess, L7_PROTO_REDIS);
    assert_eq!(r.data, b"*1\r\n$4\r\nPING\r\n");
    let sent = ev
        .iter()
        .find(|e| e.egress && e.protocol_guess == L7_PROTO_DNS && e.local.port() == cli_port)
        .expect("dns query sent");
    assert_eq!(sent.remote, "127.0.53.53:53".parse().unwrap());
    assert_eq!(sent.data, q);
    let got = ev
        .iter()
        .find(|e| !e.egress && e.protocol_guess == L7_PROTO_DNS && e.local.port() == 53)
        .expect("dns query received");
    assert_eq!(got.remote, from);
    assert_eq!(got.data, q);
}
