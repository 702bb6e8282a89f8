//! `replay` end to end on hand-built captures: TCP reassembly (reordering, retransmission,
//! gaps, mid-stream pickup), offloaded checksums, IP fragments, flows, truncated files with
//! byte offsets, pcapng in both byte orders, and `write_filtered_pcap`.

mod core_common;

use std::net::Ipv4Addr;

use core_common::frames::{self, ACK, FIN, PSH, SYN};
use fathom_l7::capture::pcap::{CaptureErrorKind, CaptureReader};
use fathom_l7::replay::{replay_reader, write_filtered_pcap, PcapFilter, ReplayOptions};
use fathom_model::l7::{ExchangeKind, L7Detail, L7Protocol};
use fathom_model::{FlowEndReason, FlowFilter, L4Protocol};

const CLI: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const SRV: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000_000_000_000;

/// One HTTP exchange over a full TCP connection; the request is sent in two segments that
/// arrive out of order, one is retransmitted, and all TCP checksums are left unfilled.
fn http_session(sport: u16, t: u64) -> Vec<(u64, Vec<u8>)> {
    let c = (CLI, sport);
    let s = (SRV, 80);
    let req1 = b"GET /index.html HTTP/1.1\r\nHost: ex";
    let req2 = b"ample.com\r\nUser-Agent: t\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello";
    let (ci, si) = (1000u32, 5000u32);
    let r1 = req1.len() as u32;
    let r2 = req2.len() as u32;
    let rl = resp.len() as u32;
    vec![
        (t, frames::tcp(c, s, ci, 0, SYN, b"", false)),
        (t + MS, frames::tcp(s, c, si, ci + 1, SYN | ACK, b"", false)),
        (
            t + 2 * MS,
            frames::tcp(c, s, ci + 1, si + 1, ACK, b"", false),
        ),
        (
            t + 3 * MS,
            frames::tcp(c, s, ci + 1 + r1, si + 1, ACK | PSH, req2, false),
        ),
        (
            t + 4 * MS,
            frames::tcp(c, s, ci + 1, si + 1, ACK | PSH, req1, false),
        ),
        (
            t + 5 * MS,
            frames::tcp(c, s, ci + 1, si + 1, ACK | PSH, req1, false),
        ),
        (
            t + 10 * MS,
            frames::tcp(s, c, si + 1, ci + 1 + r1 + r2, ACK | PSH, resp, false),
        ),
        (
            t + 11 * MS,
            frames::tcp(c, s, ci + 1 + r1 + r2, si + 1 + rl, ACK | FIN, b"", false),
        ),
        (
            t + 12 * MS,
            frames::tcp(s, c, si + 1 + rl, ci + 2 + r1 + r2, ACK | FIN, b"", false),
        ),
        (
            t + 13 * MS,
            frames::tcp(c, s, ci + 2 + r1 + r2, si + 2 + rl, ACK, b"", false),
        ),
    ]
}

fn dns_response(id: u16, n: usize) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x81, 0x80, 0, 1]);
    m.extend_from_slice(&(n as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(b"\x03big\x07example\x00\x00\x01\x00\x01");
    for i in 0..n {
        m.extend_from_slice(&[
            0xc0,
            12,
            0,
            1,
            0,
            1,
            0,
            0,
            0,
            60,
            0,
            4,
            10,
            1,
            (i >> 8) as u8,
            i as u8,
        ]);
    }
    m
}

fn dns_query(id: u16) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(b"\x03big\x07example\x00\x00\x01\x00\x01");
    m
}

#[test]
fn http_with_reordering_retransmission_and_offloaded_checksums() {
    let cap = frames::pcap(&http_session(40000, T0));
    let r = replay_reader(&cap[..], &ReplayOptions::default()).expect("replay");
    let l7: Vec<_> = r.l7().collect();
    assert_eq!(l7.len(), 1, "{:?}", r.records);
    let rec = l7[0];
    let L7Detail::Http(h) = &rec.exchange.detail else {
        panic!("{rec:?}")
    };
    assert_eq!(
        (
            h.method.as_deref(),
            h.path.as_deref(),
            h.host.as_deref(),
            h.status,
            h.response_content_type.as_deref()
        ),
        (
            Some("GET"),
            Some("/index.html"),
            Some("example.com"),
            Some(200),
            Some("text/html")
        )
    );
    assert_eq!(rec.exchange.kind, ExchangeKind::RequestResponse);
    // Request's first byte arrived at +3 ms (the second half, out of order), response at +10.
    assert_eq!(rec.exchange.latency_ns, Some(7 * MS));
    assert_eq!(
        (
            rec.source.ip.to_string(),
            rec.source.port,
            rec.destination.port
        ),
        ("10.0.0.1".into(), 40000, 80)
    );

    let flows: Vec<_> = r.flows().collect();
    assert_eq!(flows.len(), 1);
    let f = flows[0];
    assert_eq!(
        (f.l4.protocol, f.end_reason),
        (L4Protocol::Tcp, Some(FlowEndReason::Fin))
    );
    assert_eq!((f.traffic.packets_out, f.traffic.packets_in), (7, 3));
    assert_eq!(f.traffic.payload_bytes_in, 68);
    assert_eq!(f.traffic.bytes_in, 3 * 40 + 68, "IP packet bytes");
    assert_eq!(f.tcp.handshake_us, Some(1000));
    assert_eq!(rec.flow_id.as_deref(), Some(f.flow_id.as_str()));
    assert_eq!(r.stats.bad_l4_checksums, 10, "counted, not dropped");
    assert!(r.stats.tcp.retransmitted_bytes >= 34 && r.stats.tcp.out_of_order_segments >= 1);
    assert_eq!(r.stats.tcp.gaps, 0);

    // Flow ids are a pure function of the traffic.
    let again = replay_reader(&cap[..], &ReplayOptions::default()).expect("replay");
    assert_eq!(
        again.flows().next().map(|f| f.flow_id.clone()),
        Some(f.flow_id.clone())
    );
}

#[test]
fn mid_stream_pickup_with_a_lost_segment() {
    let c = (CLI, 41000);
    let s = (SRV, 8080);
    let req = b"GET /a HTTP/1.1\r\n\r\n";
    let body = [b'x'; 100];
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec();
    let head_len = resp.len() as u32;
    resp.extend_from_slice(&body);
    let req2 = b"GET /b HTTP/1.1\r\n\r\n";
    let resp2 = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    let (ci, si) = (7_000_000u32, 9_000_000u32);
    let rl = req.len() as u32;
    let pkts = vec![
        (T0, frames::tcp(c, s, ci, si, ACK | PSH, req, true)),
        (
            T0 + MS,
            frames::tcp(
                s,
                c,
                si,
                ci + rl,
                ACK | PSH,
                &resp[..head_len as usize + 10],
                true,
            ),
        ),
        // 50 body bytes are missing from the capture.
        (
            T0 + 3 * MS,
            frames::tcp(
                s,
                c,
                si + head_len + 60,
                ci + rl,
                ACK | PSH,
                &resp[head_len as usize + 60..],
                true,
            ),
        ),
        (
            T0 + 4 * MS,
            frames::tcp(c, s, ci + rl, si + resp.len() as u32, ACK | PSH, req2, true),
        ),
        (
            T0 + 5 * MS,
            frames::tcp(
                s,
                c,
                si + resp.len() as u32,
                ci + rl + req2.len() as u32,
                ACK | PSH,
                resp2,
                true,
            ),
        ),
    ];
    let r = replay_reader(&frames::pcap(&pkts)[..], &ReplayOptions::default()).expect("replay");
    let paths: Vec<_> = r
        .l7()
        .map(|x| match &x.exchange.detail {
            L7Detail::Http(h) => (h.path.clone(), h.status),
            _ => (None, None),
        })
        .collect();
    assert_eq!(
        paths,
        vec![
            (Some("/a".into()), Some(200)),
            (Some("/b".into()), Some(404))
        ]
    );
    assert_eq!((r.stats.tcp.gaps, r.stats.tcp.gap_bytes), (1, 50));
    assert_eq!(r.stats.bad_l4_checksums, 0);
    let f = r.flows().next().expect("flow");
    assert_eq!(
        (f.source.port, f.end_reason),
        (41000, Some(FlowEndReason::Shutdown))
    );
    assert_eq!(
        r.stats.protocols[&L7Protocol::Http].skipped_bytes,
        0,
        "the gap fell inside a sized body"
    );
}

#[test]
fn fragmented_udp_dns_is_reassembled() {
    let c = (CLI, 53000);
    let s = (SRV, 53);
    let resp = dns_response(0x4242, 200);
    let mut pkts: Vec<(u64, Vec<u8>)> = frames::udp_fragments(c, s, &dns_query(0x4242), 1500, 1)
        .into_iter()
        .map(|f| (T0, f))
        .collect();
    let mut frags = frames::udp_fragments(s, c, &resp, 1480, 2);
    assert!(frags.len() >= 3);
    frags.reverse();
    pkts.extend(
        frags
            .into_iter()
            .enumerate()
            .map(|(i, f)| (T0 + MS + i as u64, f)),
    );
    let r = replay_reader(&frames::pcap(&pkts)[..], &ReplayOptions::default()).expect("replay");
    assert_eq!(r.stats.reassembled_datagrams, 1);
    let rec = r.l7().next().expect("dns record");
    let L7Detail::Dns(d) = &rec.exchange.detail else {
        panic!()
    };
    assert_eq!(
        (
            d.id,
            d.qname.as_deref(),
            d.answers.len(),
            d.transport.as_str()
        ),
        (0x4242, Some("big.example"), 200, "udp")
    );
    assert_eq!(rec.exchange.latency_ns, Some(MS));
    let f = r.flows().next().expect("flow");
    assert_eq!((f.l4.protocol, f.traffic.packets_in), (L4Protocol::Udp, 3));
}

#[test]
fn truncated_capture_names_the_offset_and_keeps_earlier_records() {
    let mut pkts = http_session(40001, T0);
    pkts.extend(http_session(40002, T0 + 100 * MS));
    let cap = frames::pcap(&pkts);
    // Offset of the last record: walk the record headers.
    let mut off = 24usize;
    let mut last = 0;
    while off < cap.len() {
        last = off;
        let caplen =
            u32::from_le_bytes([cap[off + 8], cap[off + 9], cap[off + 10], cap[off + 11]]) as usize;
        off += 16 + caplen;
    }
    let cut = &cap[..last + 20];
    let e = replay_reader(cut, &ReplayOptions::default()).expect_err("truncated");
    assert_eq!(
        (e.kind, e.offset),
        (CaptureErrorKind::Truncated, last as u64)
    );
    assert!(e.to_string().contains(&format!("offset {last}")), "{e}");
    // Both HTTP exchanges happened before the cut; both flows are reported.
    assert_eq!(e.report.l7().count(), 2);
    assert_eq!(e.report.flows().count(), 2);
    assert_eq!(e.report.stats.packets, pkts.len() as u64 - 1);
}

#[test]
fn garbage_and_corrupt_files_are_clear_errors() {
    let e = replay_reader(
        &b"definitely not a capture file"[..],
        &ReplayOptions::default(),
    )
    .expect_err("garbage");
    assert_eq!((e.kind, e.offset), (CaptureErrorKind::NotACapture, 0));
    // A pcapng whose second block has a corrupt length.
    let mut ng = pcapng_le(101, 6, &[(1, vec![0x45; 20])]);
    let idb_end = 28 + 32;
    ng[idb_end + 4] = 0xff;
    ng[idb_end + 5] = 0xff;
    ng[idb_end + 6] = 0xff;
    ng[idb_end + 7] = 0x0f;
    let e = replay_reader(&ng[..], &ReplayOptions::default()).expect_err("corrupt");
    assert!(
        matches!(
            e.kind,
            CaptureErrorKind::Corrupt | CaptureErrorKind::Truncated
        ),
        "{e:?}"
    );
    assert_eq!(e.offset, idb_end as u64);
}

/// Minimal pcapng: SHB, one IDB (`linktype`, `if_tsresol` = `tsresol`), EPBs.
fn pcapng(be: bool, linktype: u16, tsresol: u8, pkts: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let w16 = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let w32 = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut f = Vec::new();
    f.extend_from_slice(&w32(0x0a0d_0d0a));
    f.extend_from_slice(&w32(28));
    f.extend_from_slice(&w32(0x1a2b_3c4d));
    f.extend_from_slice(&w16(1));
    f.extend_from_slice(&w16(0));
    f.extend_from_slice(&[0xff; 8]);
    f.extend_from_slice(&w32(28));
    f.extend_from_slice(&w32(1));
    f.extend_from_slice(&w32(20 + 12));
    f.extend_from_slice(&w16(linktype));
    f.extend_from_slice(&w16(0));
    f.extend_from_slice(&w32(0));
    f.extend_from_slice(&w16(9));
    f.extend_from_slice(&w16(1));
    f.extend_from_slice(&[tsresol, 0, 0, 0]);
    f.extend_from_slice(&w32(0));
    f.extend_from_slice(&w32(20 + 12));
    for (ts, data) in pkts {
        let pad = (4 - data.len() % 4) % 4;
        let len = 32 + data.len() + pad;
        f.extend_from_slice(&w32(6));
        f.extend_from_slice(&w32(len as u32));
        f.extend_from_slice(&w32(0));
        f.extend_from_slice(&w32((ts >> 32) as u32));
        f.extend_from_slice(&w32(*ts as u32));
        f.extend_from_slice(&w32(data.len() as u32));
        f.extend_from_slice(&w32(data.len() as u32));
        f.extend_from_slice(data);
        f.extend(std::iter::repeat_n(0u8, pad));
        f.extend_from_slice(&w32(len as u32));
    }
    f
}

fn pcapng_le(linktype: u16, tsresol: u8, pkts: &[(u64, Vec<u8>)]) -> Vec<u8> {
    pcapng(false, linktype, tsresol, pkts)
}

#[test]
fn pcapng_both_byte_orders_and_resolutions() {
    let ip = frames::ipv4(CLI, SRV, 17, 0, 9, 0);
    for be in [false, true] {
        // Nanosecond resolution.
        let f = pcapng(be, 101, 9, &[(T0 + 123, ip.clone())]);
        let mut r = CaptureReader::new(&f[..]).expect("open");
        let p = r.next_packet().expect("read").expect("packet");
        assert_eq!(
            (p.ts_ns, p.linktype, p.data.len()),
            (T0 + 123, 101, 20),
            "be={be}"
        );
        // Microsecond resolution (the default).
        let f = pcapng(be, 101, 6, &[(1_500_000_000_123_456, ip.clone())]);
        let mut r = CaptureReader::new(&f[..]).expect("open");
        let p = r.next_packet().expect("read").expect("packet");
        assert_eq!(p.ts_ns, 1_500_000_000_123_456_000, "be={be}");
    }
}

#[test]
fn write_filtered_pcap_keeps_selected_flows() {
    let dir = std::env::temp_dir().join(format!("fathom-l7-write-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let input = dir.join("in.pcap");
    let mut pkts = http_session(40010, T0);
    let dns: Vec<(u64, Vec<u8>)> =
        frames::udp_fragments((CLI, 5353), (SRV, 53), &dns_query(7), 1500, 3)
            .into_iter()
            .chain(frames::udp_fragments(
                (SRV, 53),
                (CLI, 5353),
                &dns_response(7, 300),
                1200,
                4,
            ))
            .enumerate()
            .map(|(i, f)| (T0 + 50 * MS + i as u64, f))
            .collect();
    let dns_count = dns.len();
    pkts.extend(dns);
    std::fs::write(&input, frames::pcap(&pkts)).expect("write input");

    let out = dir.join("dns.pcap");
    let filter = PcapFilter {
        flow: FlowFilter {
            port: vec![53],
            ..Default::default()
        },
        protocols: vec![],
    };
    let w = write_filtered_pcap(&input, &out, &filter, &ReplayOptions::default()).expect("write");
    assert_eq!(
        (w.packets_read, w.packets_written, w.flows_matched),
        (pkts.len() as u64, dns_count as u64, 1)
    );
    let r = fathom_l7::replay::replay_file(&out, &ReplayOptions::default()).expect("replay output");
    assert_eq!(
        (r.l7().count(), r.stats.reassembled_datagrams),
        (1, 1),
        "fragments were kept with their flow"
    );

    let out = dir.join("http.pcap");
    let filter = PcapFilter {
        flow: FlowFilter::default(),
        protocols: vec![L7Protocol::Http],
    };
    let w = write_filtered_pcap(&input, &out, &filter, &ReplayOptions::default()).expect("write");
    assert_eq!(w.packets_written, 10);
    let mut rd = CaptureReader::open(&out).expect("open output");
    let first = rd.next_packet().expect("read").expect("packet");
    assert_eq!((first.ts_ns, first.linktype), (T0, 1));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn protocol_option_restricts_inference_and_output() {
    let mut pkts = http_session(40020, T0);
    pkts.extend(
        frames::udp_fragments((CLI, 5000), (SRV, 53), &dns_query(9), 1500, 5)
            .into_iter()
            .chain(frames::udp_fragments(
                (SRV, 53),
                (CLI, 5000),
                &dns_response(9, 2),
                1500,
                6,
            ))
            .map(|f| (T0 + 30 * MS, f)),
    );
    let cap = frames::pcap(&pkts);
    let all = replay_reader(&cap[..], &ReplayOptions::default()).expect("replay");
    assert_eq!(all.l7().count(), 2);
    let dns_only = replay_reader(
        &cap[..],
        &ReplayOptions::default().with_protocols(vec![L7Protocol::Dns]),
    )
    .expect("replay");
    let protos: Vec<_> = dns_only
        .l7()
        .map(|r| r.exchange.detail.protocol())
        .collect();
    assert_eq!(protos, vec![L7Protocol::Dns]);
    assert_eq!(dns_only.flows().count(), 2, "flows are still reported");
}

/// A real capture (Zeek's http/get.pcap) cut inside its last record.
#[test]
fn truncated_corpus_capture() {
    let Some(corpus) = core_common::corpus() else {
        return;
    };
    let path = corpus.join("zeek/testing/btest/Traces/http/get.pcap");
    let cap = std::fs::read(&path).expect("read get.pcap");
    let full = replay_reader(&cap[..], &ReplayOptions::default()).expect("replay");
    let mut off = 24usize;
    let mut offsets = Vec::new();
    while off + 16 <= cap.len() {
        offsets.push(off);
        let caplen =
            u32::from_le_bytes([cap[off + 8], cap[off + 9], cap[off + 10], cap[off + 11]]) as usize;
        off += 16 + caplen;
    }
    let last = *offsets.last().expect("records");
    let e = replay_reader(&cap[..last + 7], &ReplayOptions::default()).expect_err("truncated");
    assert_eq!(
        (e.kind, e.offset),
        (CaptureErrorKind::Truncated, last as u64)
    );
    assert_eq!(e.report.stats.packets, full.stats.packets - 1);
    assert_eq!(
        e.report.l7().count(),
        full.l7().count(),
        "the HTTP exchange precedes the cut"
    );
}

#[test]
fn flow_table_is_bounded() {
    let pkts: Vec<(u64, Vec<u8>)> = (0..200u16)
        .flat_map(|i| frames::udp_fragments((CLI, 20000 + i), (SRV, 9999), b"hello", 1500, i))
        .enumerate()
        .map(|(i, f)| (T0 + i as u64 * MS, f))
        .collect();
    let opts = ReplayOptions {
        max_flows: 32,
        ..Default::default()
    };
    let r = replay_reader(&frames::pcap(&pkts)[..], &opts).expect("replay");
    assert_eq!(r.flows().count(), 200, "every flow is reported once");
    assert!(r.stats.flows_evicted >= 160);
    let evicted = r
        .flows()
        .filter(|f| f.end_reason == Some(FlowEndReason::Evicted))
        .count() as u64;
    assert_eq!(evicted, r.stats.flows_evicted);
    assert_eq!(r.stats.unidentified_connections, 200);
}
