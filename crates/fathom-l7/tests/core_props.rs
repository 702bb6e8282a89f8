//! Property tests for the core parsers and the TCP reassembler:
//! - HTTP/1, DNS over TCP and TLS give the same exchanges however the bytes are chunked
//!   (whole, one byte at a time, random cuts);
//! - the reassembler rebuilds the stream from segments in any order, with duplicates and
//!   overlapping retransmissions;
//! - arbitrary bytes never make a parser panic.

use fathom_l7::capture::tcp::{Chunk, HalfStream, TcpLimits};
use fathom_l7::dns::{DnsParser, DnsTransport};
use fathom_l7::http1::Http1Parser;
use fathom_l7::parser::{Direction, ProtocolParser};
use fathom_l7::session::{AutoParser, Transport};
use fathom_l7::tls::TlsParser;
use fathom_model::l7::L7Exchange;
use proptest::prelude::*;

use Direction::{ClientToServer as C, ServerToClient as S};

type Conv = Vec<(Direction, Vec<u8>)>;

/// Feed a conversation, each message cut at the given sizes (cycled); timestamps advance per
/// message so that latency is checked too.
fn run(mut p: Box<dyn ProtocolParser>, conv: &Conv, cuts: &[usize]) -> Vec<L7Exchange> {
    let mut out = Vec::new();
    let mut k = 0;
    for (i, (d, bytes)) in conv.iter().enumerate() {
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = if cuts.is_empty() {
                rest.len()
            } else {
                cuts[k % cuts.len()].clamp(1, rest.len())
            };
            k += 1;
            p.feed(*d, 1_000 * i as u64, &rest[..n], &mut out);
            rest = &rest[n..];
        }
    }
    p.finish(1_000_000, &mut out);
    assert_eq!(
        p.stats().skipped_bytes,
        0,
        "well-formed input must not be skipped"
    );
    out
}

fn http_conv() -> impl Strategy<Value = Conv> {
    let req = (
        prop::sample::select(vec!["GET", "POST", "PUT", "HEAD", "DELETE"]),
        "/[a-z0-9/]{0,12}",
        prop::option::of("[a-z]{1,8}\\.example"),
        prop::collection::vec(any::<u8>(), 0..40),
        any::<bool>(),
    );
    let resp = (
        prop::sample::select(vec![200u16, 201, 204, 301, 404, 500]),
        prop::collection::vec(any::<u8>(), 0..60),
        any::<bool>(),
        any::<bool>(),
    );
    prop::collection::vec((req, resp), 1..5).prop_map(|pairs| {
        let mut conv = Vec::new();
        for ((method, path, host, body, chunked), (status, rbody, rchunked, interim)) in pairs {
            let mut q = format!("{method} {path} HTTP/1.1\r\nUser-Agent: prop\r\n");
            if let Some(h) = host {
                q.push_str(&format!("Host: {h}\r\n"));
            }
            let mut qb = q.into_bytes();
            let body = if method == "GET" || method == "HEAD" {
                Vec::new()
            } else {
                body
            };
            append_body(&mut qb, &body, chunked);
            conv.push((C, qb));
            if interim {
                conv.push((S, b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()));
            }
            let mut r = format!("HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\n").into_bytes();
            let rbody = if status == 204 || method == "HEAD" {
                Vec::new()
            } else {
                rbody
            };
            if method == "HEAD" || status == 204 {
                r.extend_from_slice(b"\r\n");
            } else {
                append_body(&mut r, &rbody, rchunked);
            }
            conv.push((S, r));
        }
        conv
    })
}

fn append_body(msg: &mut Vec<u8>, body: &[u8], chunked: bool) {
    if chunked {
        msg.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        for part in body.chunks(7) {
            msg.extend_from_slice(format!("{:x};ext=1\r\n", part.len()).as_bytes());
            msg.extend_from_slice(part);
            msg.extend_from_slice(b"\r\n");
        }
        msg.extend_from_slice(b"0\r\nTrailer-Field: x\r\n\r\n");
    } else {
        msg.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        msg.extend_from_slice(body);
    }
}

fn dns_name() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z0-9-]{1,12}", 1..4).prop_map(|l| l.join("."))
}

fn dns_message(id: u16, name: &str, response: bool, ips: &[[u8; 4]]) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(if response {
        &[0x81, 0x80]
    } else {
        &[0x01, 0x00]
    });
    m.extend_from_slice(&[
        0,
        1,
        0,
        if response { ips.len() as u8 } else { 0 },
        0,
        0,
        0,
        0,
    ]);
    for l in name.split('.') {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    if response {
        for ip in ips {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4]);
            m.extend_from_slice(ip);
        }
    }
    let mut framed = (m.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&m);
    framed
}

fn dns_conv() -> impl Strategy<Value = Conv> {
    prop::collection::vec(
        (
            any::<u16>(),
            dns_name(),
            prop::collection::vec(any::<[u8; 4]>(), 0..4),
        ),
        1..5,
    )
    .prop_map(|qs| {
        let mut conv = Vec::new();
        // Pipelined queries, then the answers in reverse order (TCP allows reordering).
        for (id, name, _) in &qs {
            conv.push((C, dns_message(*id, name, false, &[])));
        }
        for (id, name, ips) in qs.iter().rev() {
            conv.push((S, dns_message(*id, name, true, ips)));
        }
        conv
    })
}

fn tls_record(ct: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![ct, 3, 3];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

fn client_hello(sni: &str, alpn: &[String]) -> Vec<u8> {
    let mut ext = Vec::new();
    let n = sni.as_bytes();
    ext.extend_from_slice(&[0, 0]);
    ext.extend_from_slice(&((n.len() + 5) as u16).to_be_bytes());
    ext.extend_from_slice(&((n.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(n.len() as u16).to_be_bytes());
    ext.extend_from_slice(n);
    if !alpn.is_empty() {
        let list: Vec<u8> = alpn
            .iter()
            .flat_map(|a| std::iter::once(a.len() as u8).chain(a.bytes()))
            .collect();
        ext.extend_from_slice(&[0, 16]);
        ext.extend_from_slice(&((list.len() + 2) as u16).to_be_bytes());
        ext.extend_from_slice(&(list.len() as u16).to_be_bytes());
        ext.extend_from_slice(&list);
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[1; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0xc0, 0x2f, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend_from_slice(&body);
    hs
}

fn server_hello() -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[2; 32]);
    body.extend_from_slice(&[0, 0xc0, 0x2f, 0, 0, 0]);
    let mut hs = vec![2, 0, 0, body.len() as u8];
    hs.extend_from_slice(&body);
    hs
}

fn tls_conv() -> impl Strategy<Value = (Conv, usize)> {
    (
        "[a-z]{1,20}\\.[a-z]{2,5}",
        prop::collection::vec("[a-z0-9/.]{1,8}", 0..3),
        1usize..64,
    )
        .prop_map(|(sni, alpn, frag)| {
            // The ClientHello is split over several handshake records of `frag` bytes.
            let ch = client_hello(&sni, &alpn);
            let c: Vec<u8> = ch.chunks(frag).flat_map(|p| tls_record(22, p)).collect();
            let mut s = tls_record(22, &server_hello());
            s.extend(tls_record(20, &[1]));
            s.extend(tls_record(23, &[9; 40]));
            (vec![(C, c), (S, s)], frag)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn http1_chunking_invariance(conv in http_conv(), cuts in prop::collection::vec(1usize..9, 1..6)) {
        let whole = run(Box::new(Http1Parser::new()), &conv, &[]);
        prop_assert_eq!(whole.len(), conv.iter().filter(|(d, m)| *d == S && !m.starts_with(b"HTTP/1.1 100")).count());
        prop_assert_eq!(&run(Box::new(Http1Parser::new()), &conv, &[1]), &whole);
        prop_assert_eq!(&run(Box::new(Http1Parser::new()), &conv, &cuts), &whole);
    }

    #[test]
    fn dns_tcp_chunking_invariance(conv in dns_conv(), cuts in prop::collection::vec(1usize..9, 1..6)) {
        let mk = || -> Box<dyn ProtocolParser> { Box::new(DnsParser::new(DnsTransport::Tcp)) };
        let whole = run(mk(), &conv, &[]);
        prop_assert_eq!(whole.len(), conv.len() / 2);
        prop_assert_eq!(&run(mk(), &conv, &[1]), &whole);
        prop_assert_eq!(&run(mk(), &conv, &cuts), &whole);
    }

    #[test]
    fn tls_chunking_invariance((conv, _frag) in tls_conv(), cuts in prop::collection::vec(1usize..9, 1..6)) {
        let whole = run(Box::new(TlsParser::new()), &conv, &[]);
        prop_assert_eq!(whole.len(), 1);
        prop_assert_eq!(&run(Box::new(TlsParser::new()), &conv, &[1]), &whole);
        prop_assert_eq!(&run(Box::new(TlsParser::new()), &conv, &cuts), &whole);
    }

    #[test]
    fn inference_is_chunking_invariant(conv in http_conv(), cuts in prop::collection::vec(1usize..9, 1..6)) {
        let whole = run(Box::new(AutoParser::new(Transport::Tcp, Some(8080))), &conv, &[]);
        prop_assert_eq!(&run(Box::new(AutoParser::new(Transport::Tcp, Some(8080))), &conv, &cuts), &whole);
    }

    #[test]
    fn reassembly_any_order_with_duplicates(
        stream in prop::collection::vec(any::<u8>(), 1..400),
        cuts in prop::collection::vec(1usize..40, 1..20),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
        dups in prop::collection::vec((any::<prop::sample::Index>(), 0usize..10, 1usize..30), 0..8),
        isn in any::<u32>(),
    ) {
        // Segments covering the stream, plus retransmissions that overlap segment borders.
        let mut segs: Vec<(usize, usize)> = Vec::new();
        let mut at = 0;
        let mut k = 0;
        while at < stream.len() {
            let n = cuts[k % cuts.len()].min(stream.len() - at);
            segs.push((at, n));
            at += n;
            k += 1;
        }
        for (i, back, len) in &dups {
            let (s, _) = segs[i.index(segs.len())];
            let start = s.saturating_sub(*back);
            segs.push((start, (*len).min(stream.len() - start)));
        }
        for (i, o) in order.iter().enumerate() {
            let n = segs.len();
            segs.swap(i % n, o.index(n));
        }
        let mut h = HalfStream::new(TcpLimits::default());
        let mut got = Vec::new();
        let mut gaps = 0u64;
        h.segment(0, isn, 0x02, &[], 0, &mut |_| {});
        for (s, n) in &segs {
            let seq = isn.wrapping_add(1).wrapping_add(*s as u32);
            h.segment(0, seq, 0x10, &stream[*s..s + n], *n as u32, &mut |c| match c {
                Chunk::Data { bytes, .. } => got.extend_from_slice(bytes),
                Chunk::Gap { len } => gaps += len,
            });
        }
        h.flush(&mut |c| match c {
            Chunk::Data { bytes, .. } => got.extend_from_slice(bytes),
            Chunk::Gap { len } => gaps += len,
        });
        prop_assert_eq!(gaps, 0);
        prop_assert_eq!(got, stream);
    }

    #[test]
    fn arbitrary_bytes_never_panic(chunks in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..200)), 0..12)) {
        let parsers: Vec<Box<dyn ProtocolParser>> = vec![
            Box::new(Http1Parser::new()),
            Box::new(DnsParser::new(DnsTransport::Tcp)),
            Box::new(DnsParser::new(DnsTransport::Udp)),
            Box::new(TlsParser::new()),
            Box::new(AutoParser::new(Transport::Tcp, Some(80))),
            Box::new(AutoParser::new(Transport::Udp, Some(53))),
        ];
        for mut p in parsers {
            let mut out = Vec::new();
            for (i, (client, c)) in chunks.iter().enumerate() {
                let d = if *client { C } else { S };
                if i % 5 == 4 {
                    p.gap(d, c.len() as u64);
                } else {
                    p.feed(d, i as u64, c, &mut out);
                }
            }
            p.finish(99, &mut out);
        }
    }
}

/// Requests that start like HTTP but are not must be skipped and counted, then parsing resumes.
#[test]
fn garbage_between_messages_is_counted() {
    let mut p = Http1Parser::new();
    let mut out = Vec::new();
    p.feed(
        C,
        0,
        b"GET /a HTTP/1.1\r\n\r\n\x00\x01\x02 noise\r\nGET /b HTTP/1.1\r\n\r\n",
        &mut out,
    );
    p.feed(
        S,
        1,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        &mut out,
    );
    assert_eq!(out.len(), 2);
    assert_eq!(p.stats().skipped_bytes, 11);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random frames under every supported link type: no panic.
    #[test]
    fn packet_path_never_panics(
        frames in prop::collection::vec((prop::sample::select(vec![0u32, 1, 9, 12, 50, 101, 108, 113, 228, 229, 276, 999]), prop::collection::vec(any::<u8>(), 0..120)), 0..20),
    ) {
        use fathom_l7::capture::pcap::CapturePacket;
        use fathom_l7::replay::{Replayer, ReplayOptions};
        let mut r = Replayer::new(ReplayOptions::default());
        for (i, (lt, data)) in frames.iter().enumerate() {
            // Make some frames look like IPv4/IPv6 behind the link header.
            let mut d = data.clone();
            if let Some(b) = d.get_mut(14) {
                *b = if i % 2 == 0 { 0x45 } else { 0x60 };
            }
            let pkt = CapturePacket {
                ts_ns: i as u64,
                linktype: *lt,
                orig_len: d.len() as u32 + (i as u32 % 3),
                data: &d,
                offset: 0,
                interface: 0,
                number: i as u64 + 1,
            };
            r.push(&pkt);
        }
        let _ = r.finish();
    }

    /// Random capture files (bare, and behind a valid pcap header): no panic.
    #[test]
    fn capture_files_never_panic(file in prop::collection::vec(any::<u8>(), 0..300)) {
        use fathom_l7::capture::pcap::CaptureReader;
        let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0];
        f.extend_from_slice(&file);
        for bytes in [&file[..], &f[..]] {
            if let Ok(mut rd) = CaptureReader::new(bytes) {
                while let Ok(Some(_)) = rd.next_packet() {}
            }
        }
    }
}
