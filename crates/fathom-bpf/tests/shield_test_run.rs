//! shield.bpf.c under BPF_PROG_TEST_RUN: crafted packets in, exact verdicts, counters and drop
//! events out. The program's clock is pinned through the config map (`set_test_clock`) so token
//! bucket refill is exact. Needs root (loads BPF programs); nothing is attached anywhere.

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use etherparse::PacketBuilder;
use fathom_bpf::abi::shield::{ShieldProto, ShieldReason, ShieldStat};
use fathom_bpf::shield::{
    parse_cidr, RateLimits, Shield, ShieldDropEvent, ShieldMode, ShieldSettings, ORIGIN_OPERATOR,
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];
const DST4: [u8; 4] = [10, 9, 0, 2];
const T0: u64 = 1_000_000_000_000;

fn shield(settings: ShieldSettings) -> Shield {
    let mut s = Shield::load(None, &settings).expect("load shield.bpf.c (are we root?)");
    s.set_test_clock(T0).unwrap();
    s
}

fn enforce() -> Shield {
    shield(ShieldSettings::default())
}

fn run(s: &Shield, pkt: &[u8]) -> u32 {
    s.test_run(pkt, 1).expect("test run").0
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

fn tcp4(src: [u8; 4], flags: &str) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, DST4, 64)
        .tcp(40000, 80, 1, 65535);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(1),
            'F' => b.fin(),
            'R' => b.rst(),
            'P' => b.psh(),
            'U' => b.urg(0),
            _ => panic!("flag {f}"),
        };
    }
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

fn udp4(src: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, DST4, 64)
        .udp(5000, 53)
        .write(&mut out, payload)
        .unwrap();
    out
}

fn udp6(src: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(v6(src), v6("fd00::2"), 64)
        .udp(5000, 53)
        .write(&mut out, payload)
        .unwrap();
    out
}

fn tcp6(src: &str, flags: &str) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(v6(src), v6("fd00::2"), 64)
        .tcp(40000, 443, 1, 65535);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(1),
            _ => panic!("flag {f}"),
        };
    }
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

/// Ethernet + hand-made IPv4 header (IHL 5) + `l4`, total length as computed unless overridden.
fn ipv4_raw(proto: u8, l4: &[u8]) -> Vec<u8> {
    let tot = (20 + l4.len()) as u16;
    let mut p = Vec::new();
    p.extend_from_slice(&MAC_B);
    p.extend_from_slice(&MAC_A);
    p.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
    p.extend_from_slice(&tot.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&[10, 1, 1, 1]);
    p.extend_from_slice(&DST4);
    p.extend_from_slice(l4);
    p
}

fn events(s: &Shield) -> Vec<ShieldDropEvent> {
    let got = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&got);
    let rb = s.ring_buffer(move |e| sink.borrow_mut().push(e)).unwrap();
    rb.poll(Duration::from_millis(20)).unwrap();
    drop(rb);
    Rc::try_unwrap(got)
        .map(|c| c.into_inner())
        .unwrap_or_default()
}

#[test]
fn blocklisted_cidrs_drop_both_families_and_others_pass() {
    let s = enforce();
    s.block(&parse_cidr("10.1.0.0/16").unwrap(), None, ORIGIN_OPERATOR)
        .unwrap();
    s.block(&parse_cidr("fd00:bad::/32").unwrap(), None, ORIGIN_OPERATOR)
        .unwrap();
    assert_eq!(run(&s, &udp4([10, 1, 200, 3], b"x")), XDP_DROP);
    assert_eq!(run(&s, &tcp4([10, 1, 0, 1], "S")), XDP_DROP);
    assert_eq!(run(&s, &udp4([10, 2, 0, 1], b"x")), XDP_PASS);
    assert_eq!(run(&s, &udp6("fd00:bad:1::9", b"x")), XDP_DROP);
    assert_eq!(run(&s, &udp6("fd00:bae::9", b"x")), XDP_PASS);
    // A v4 prefix never matches a native IPv6 address that happens to share the low bits.
    assert_eq!(run(&s, &udp6("::a01:1", b"x")), XDP_PASS);

    let c = s.counters();
    assert_eq!(c.drop_count(ShieldReason::Blocklist), 3);
    assert_eq!(c.stat(ShieldStat::Dropped), 3);
    assert_eq!(c.stat(ShieldStat::Passed), 3);
    let total: u64 = ShieldReason::ALL.iter().map(|r| c.drop_count(*r)).sum();
    assert_eq!(total, 3, "no other reason counted: {c:?}");

    let blocks = s.blocks();
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].cidr.to_string(), "10.1.0.0/16");
    assert_eq!(blocks[1].cidr.to_string(), "fd00:bad::/32");
    assert!(blocks.iter().all(|b| b.expires_ns.is_none()));

    assert!(s.unblock(&parse_cidr("10.1.0.0/16").unwrap()).unwrap());
    assert!(!s.unblock(&parse_cidr("10.1.0.0/16").unwrap()).unwrap());
    assert_eq!(run(&s, &udp4([10, 1, 200, 3], b"x")), XDP_PASS);
}

#[test]
fn longest_prefix_and_allowlist_win() {
    let s = enforce();
    s.block(&parse_cidr("10.0.0.0/8").unwrap(), None, ORIGIN_OPERATOR)
        .unwrap();
    s.block(&parse_cidr("fd00::/16").unwrap(), None, ORIGIN_OPERATOR)
        .unwrap();
    s.allow(&parse_cidr("10.5.0.0/24").unwrap()).unwrap();
    s.allow(&parse_cidr("fd00::7").unwrap()).unwrap();
    assert_eq!(run(&s, &udp4([10, 5, 0, 9], b"x")), XDP_PASS);
    assert_eq!(run(&s, &udp4([10, 5, 1, 9], b"x")), XDP_DROP);
    assert_eq!(run(&s, &udp6("fd00::7", b"x")), XDP_PASS);
    assert_eq!(run(&s, &udp6("fd00::8", b"x")), XDP_DROP);
    // Allowlisted sources are never dropped, not even for malformed packets.
    assert_eq!(run(&s, &tcp4([10, 5, 0, 9], "SF")), XDP_PASS);
    let c = s.counters();
    assert_eq!(c.stat(ShieldStat::Allowlisted), 3);
    assert_eq!(c.stat(ShieldStat::Dropped), 2);
    assert_eq!(c.drop_count(ShieldReason::TcpSynFin), 0);

    s.set_allowlist(&[parse_cidr("10.6.0.0/16").unwrap()])
        .unwrap();
    assert_eq!(
        s.allows().iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        ["10.6.0.0/16"]
    );
    assert_eq!(run(&s, &udp4([10, 5, 0, 9], b"x")), XDP_DROP);
}

#[test]
fn expired_blocks_pass_and_are_reaped() {
    let mut s = enforce();
    let net = parse_cidr("192.168.7.0/24").unwrap();
    s.block(&net, Some(T0 + 1_000), ORIGIN_OPERATOR).unwrap();
    let pkt = udp4([192, 168, 7, 1], b"x");
    assert_eq!(run(&s, &pkt), XDP_DROP);
    s.set_test_clock(T0 + 999).unwrap();
    assert_eq!(run(&s, &pkt), XDP_DROP, "one ns before expiry still blocks");
    s.set_test_clock(T0 + 1_000).unwrap();
    assert_eq!(run(&s, &pkt), XDP_PASS, "expired at expires_ns exactly");
    let c = s.counters();
    assert_eq!(c.stat(ShieldStat::BlockExpired), 1);
    assert_eq!(c.drop_count(ShieldReason::Blocklist), 2);

    assert!(s.reap_expired(T0 + 999).is_empty());
    let gone = s.reap_expired(T0 + 1_000);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].cidr, net);
    assert_eq!(gone[0].expires_ns, Some(T0 + 1_000));
    assert!(s.blocks().is_empty());
}

#[test]
fn packet_bucket_burst_then_exact_refill() {
    let mut s = shield(ShieldSettings {
        rates: RateLimits {
            packets_per_sec: 10,
            packet_burst: 5,
            ..Default::default()
        },
        ..Default::default()
    });
    let pkt = udp4([10, 3, 0, 1], b"x");
    // Burst 5 at one instant: 5 pass (repeat runs the program 5 times), the 6th drops.
    let (r, _) = s.test_run(&pkt, 5).unwrap();
    assert_eq!(r, XDP_PASS);
    assert_eq!(s.counters().stat(ShieldStat::Passed), 5);
    assert_eq!(run(&s, &pkt), XDP_DROP);
    // 10/s: one token every 100 ms. 1 ns short of it: still empty.
    s.set_test_clock(T0 + 99_999_999).unwrap();
    assert_eq!(run(&s, &pkt), XDP_DROP);
    s.set_test_clock(T0 + 100_000_000).unwrap();
    assert_eq!(run(&s, &pkt), XDP_PASS);
    assert_eq!(run(&s, &pkt), XDP_DROP);
    // Another source has its own bucket.
    assert_eq!(run(&s, &udp4([10, 3, 0, 2], b"x")), XDP_PASS);
    // A long idle period refills to the burst, not beyond.
    s.set_test_clock(T0 + 3_600_000_000_000).unwrap();
    for _ in 0..5 {
        assert_eq!(run(&s, &pkt), XDP_PASS);
    }
    assert_eq!(run(&s, &pkt), XDP_DROP);

    let c = s.counters();
    assert_eq!(c.drop_count(ShieldReason::PktRate), 4);
    assert_eq!(c.stat(ShieldStat::Passed), 5 + 1 + 1 + 5);
    assert_eq!(s.bucket_count(), 2);
}

#[test]
fn syn_bucket_limits_only_syns() {
    let mut s = shield(ShieldSettings {
        rates: RateLimits {
            syn_per_sec: 2,
            syn_burst: 3,
            ..Default::default()
        },
        ..Default::default()
    });
    let syn = tcp4([10, 4, 0, 1], "S");
    for _ in 0..3 {
        assert_eq!(run(&s, &syn), XDP_PASS);
    }
    assert_eq!(run(&s, &syn), XDP_DROP);
    // Not SYNs: SYN+ACK, ACK, UDP pass untouched.
    assert_eq!(run(&s, &tcp4([10, 4, 0, 1], "SA")), XDP_PASS);
    assert_eq!(run(&s, &tcp4([10, 4, 0, 1], "A")), XDP_PASS);
    assert_eq!(run(&s, &udp4([10, 4, 0, 1], b"x")), XDP_PASS);
    // 2/s: 500 ms per token; the non-SYN packets in between do not lose refill time.
    s.set_test_clock(T0 + 499_999_999).unwrap();
    assert_eq!(run(&s, &tcp4([10, 4, 0, 1], "A")), XDP_PASS);
    assert_eq!(run(&s, &syn), XDP_DROP);
    s.set_test_clock(T0 + 500_000_000).unwrap();
    assert_eq!(run(&s, &syn), XDP_PASS);
    assert_eq!(run(&s, &syn), XDP_DROP);
    // IPv6 SYNs are limited per source as well.
    let syn6 = tcp6("fd00::99", "S");
    let (r, _) = s.test_run(&syn6, 3).unwrap();
    assert_eq!(r, XDP_PASS);
    assert_eq!(run(&s, &syn6), XDP_DROP);

    let c = s.counters();
    assert_eq!(c.drop_count(ShieldReason::SynRate), 4);
    assert_eq!(c.drop_count(ShieldReason::PktRate), 0);
}

fn malformed_cases() -> Vec<(&'static str, Vec<u8>, ShieldReason)> {
    let mut v = Vec::new();
    let good_udp = udp4([10, 1, 1, 1], &[0; 4]);
    let mut p = good_udp.clone();
    p[14] = 0x43; // IHL 3
    v.push(("ihl 3", p, ShieldReason::IpHeader));
    let mut p = good_udp.clone();
    p[14] = 0x55; // version 5 under an IPv4 ethertype
    v.push(("version 5", p, ShieldReason::IpHeader));
    let mut p = good_udp.clone();
    p[16..18].copy_from_slice(&200u16.to_be_bytes());
    v.push(("total length beyond frame", p, ShieldReason::IpLength));
    let mut p = good_udp.clone();
    p[16..18].copy_from_slice(&10u16.to_be_bytes());
    v.push(("total length below header", p, ShieldReason::IpLength));
    let mut p = good_udp.clone();
    p[14] = 0x4f; // IHL 15 = 60 bytes: beyond this 32-byte packet
    v.push(("ihl beyond frame", p, ShieldReason::IpLength));
    v.push((
        "ip header cut short",
        {
            let mut p = good_udp.clone();
            p.truncate(14 + 12);
            p
        },
        ShieldReason::IpLength,
    ));
    v.push((
        "tcp 10 of 20 bytes",
        ipv4_raw(6, &[0; 10]),
        ShieldReason::L4Truncated,
    ));
    let mut tcp = tcp4([10, 1, 1, 1], "S")[34..].to_vec();
    tcp[12] = 0x20; // data offset 2
    v.push((
        "tcp data offset 2",
        ipv4_raw(6, &tcp),
        ShieldReason::L4Truncated,
    ));
    let mut tcp = tcp4([10, 1, 1, 1], "S")[34..].to_vec();
    tcp[12] = 0x80; // data offset 8 = 32 bytes, only 20 there
    v.push((
        "tcp data offset beyond",
        ipv4_raw(6, &tcp),
        ShieldReason::L4Truncated,
    ));
    v.push((
        "udp 4 of 8 bytes",
        ipv4_raw(17, &[0; 4]),
        ShieldReason::L4Truncated,
    ));
    v.push((
        "icmp 4 of 8 bytes",
        ipv4_raw(1, &[8, 0, 0, 0]),
        ShieldReason::L4Truncated,
    ));
    v.push((
        "syn+fin",
        tcp4([10, 1, 1, 1], "SF"),
        ShieldReason::TcpSynFin,
    ));
    v.push((
        "syn+rst",
        tcp4([10, 1, 1, 1], "SR"),
        ShieldReason::TcpSynRst,
    ));
    v.push(("null", tcp4([10, 1, 1, 1], ""), ShieldReason::TcpNull));
    v.push(("xmas", tcp4([10, 1, 1, 1], "FPU"), ShieldReason::TcpXmas));
    let mut p = udp6("fd00::1", &[0; 4]);
    p[18..20].copy_from_slice(&100u16.to_be_bytes());
    v.push(("ipv6 payload beyond frame", p, ShieldReason::IpLength));
    let mut p = udp6("fd00::1", &[0; 4]);
    p[14] = 0x40; // version 4 under an IPv6 ethertype
    v.push(("ipv6 version 4", p, ShieldReason::IpHeader));
    let mut p = tcp6("fd00::1", "S");
    let n = p.len();
    p.truncate(n - 8); // TCP header cut to 12 bytes, payload length fixed to match
    p[18..20].copy_from_slice(&12u16.to_be_bytes());
    v.push(("ipv6 tcp cut short", p, ShieldReason::L4Truncated));
    v
}

#[test]
fn each_malformed_class_is_dropped_with_its_reason() {
    for (name, pkt, reason) in malformed_cases() {
        let s = enforce();
        assert_eq!(run(&s, &pkt), XDP_DROP, "{name}");
        let c = s.counters();
        for r in ShieldReason::ALL {
            let want = u64::from(r == reason);
            assert_eq!(c.drop_count(r), want, "{name}: reason {}", r.name());
        }
        assert_eq!(c.stat(ShieldStat::Dropped), 1, "{name}");
    }
    // Legit neighbours of those classes pass: SYN+ACK, FIN+ACK, RST+ACK, PSH+ACK, a fragment's
    // later part without an L4 header, ICMP echo.
    let s = enforce();
    for flags in ["SA", "FA", "RA", "PA", "R", "A"] {
        assert_eq!(run(&s, &tcp4([10, 1, 1, 1], flags)), XDP_PASS, "{flags}");
    }
    let mut frag = ipv4_raw(17, &[7; 16]);
    frag[20..22].copy_from_slice(&3u16.to_be_bytes()); // offset 24 bytes
    assert_eq!(run(&s, &frag), XDP_PASS, "later fragment");
    let mut echo = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([10, 1, 1, 1], DST4, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut echo, &[0; 8])
        .unwrap();
    assert_eq!(run(&s, &echo), XDP_PASS);
    let mut arp = vec![0u8; 42];
    arp[12] = 0x08;
    arp[13] = 0x06;
    assert_eq!(run(&s, &arp), XDP_PASS);
    assert_eq!(s.counters().stat(ShieldStat::Dropped), 0);
}

#[test]
fn monitor_mode_counts_and_reports_but_passes() {
    let s = shield(ShieldSettings {
        mode: ShieldMode::Monitor,
        rates: RateLimits {
            packets_per_sec: 1,
            packet_burst: 1,
            ..Default::default()
        },
        ..Default::default()
    });
    s.block(&parse_cidr("10.8.0.0/16").unwrap(), None, ORIGIN_OPERATOR)
        .unwrap();
    assert_eq!(run(&s, &udp4([10, 8, 0, 1], b"x")), XDP_PASS);
    assert_eq!(run(&s, &tcp4([10, 7, 0, 1], "")), XDP_PASS);
    assert_eq!(run(&s, &udp4([10, 6, 0, 1], b"x")), XDP_PASS);
    assert_eq!(run(&s, &udp4([10, 6, 0, 1], b"x")), XDP_PASS);
    let c = s.counters();
    assert_eq!(c.stat(ShieldStat::Dropped), 0);
    assert_eq!(c.stat(ShieldStat::Monitored), 3);
    assert_eq!(c.stat(ShieldStat::Passed), 1);
    assert_eq!(c.drop_count(ShieldReason::Blocklist), 1);
    assert_eq!(c.drop_count(ShieldReason::TcpNull), 1);
    assert_eq!(c.drop_count(ShieldReason::PktRate), 1);
    let ev = events(&s);
    assert_eq!(ev.len(), 3, "{ev:#?}");
    assert!(ev.iter().all(|e| e.monitor));
    assert_eq!(ev[0].reason, "blocklist");
    assert_eq!(ev[0].src, IpAddr::from([10, 8, 0, 1]));
    assert_eq!(ev[0].dst, IpAddr::from(DST4));
    assert_eq!((ev[0].sport, ev[0].dport, ev[0].proto), (5000, 53, 17));
    assert_eq!(ev[1].reason, "tcp_null");
    assert_eq!(ev[2].reason, "packet_rate");
}

#[test]
fn protocol_counters_are_exact() {
    let s = enforce();
    let t = tcp4([10, 1, 1, 1], "S");
    let u = udp4([10, 1, 1, 1], &[0; 30]);
    let u6 = udp6("fd00::1", &[0; 10]);
    let mut echo = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([10, 1, 1, 1], DST4, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut echo, &[0; 8])
        .unwrap();
    let gre = ipv4_raw(47, &[0; 8]);
    let mut arp = vec![0u8; 42];
    arp[12] = 0x08;
    arp[13] = 0x06;
    s.test_run(&t, 3).unwrap();
    s.test_run(&u, 2).unwrap();
    run(&s, &u6);
    run(&s, &echo);
    run(&s, &gre);
    run(&s, &arp);
    let c = s.counters();
    assert_eq!(c.protocol(ShieldProto::Tcp), (3, 3 * t.len() as u64));
    assert_eq!(
        c.protocol(ShieldProto::Udp),
        (3, 2 * u.len() as u64 + u6.len() as u64)
    );
    assert_eq!(c.protocol(ShieldProto::Icmp), (1, echo.len() as u64));
    assert_eq!(c.protocol(ShieldProto::OtherIp), (1, gre.len() as u64));
    assert_eq!(c.protocol(ShieldProto::NonIp), (1, 42));
    assert_eq!(c.stat(ShieldStat::Passed), 9);
}

#[test]
fn drop_events_are_rate_limited_and_carry_suppressed_counts() {
    let mut s = shield(ShieldSettings {
        events_per_sec: 2,
        ..Default::default()
    });
    s.block(&parse_cidr("10.9.9.9").unwrap(), None, ORIGIN_OPERATOR)
        .unwrap();
    let pkt = udp4([10, 9, 9, 9], b"x");
    s.test_run(&pkt, 5).unwrap();
    let c = s.counters();
    assert_eq!(
        c.drop_count(ShieldReason::Blocklist),
        5,
        "counters stay exact"
    );
    assert_eq!(c.stat(ShieldStat::EventsSent), 2);
    assert_eq!(c.stat(ShieldStat::EventsSuppressed), 3);
    let ev = events(&s);
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|e| e.suppressed == 0 && !e.monitor));
    s.set_test_clock(T0 + 1_000_000_000).unwrap();
    assert_eq!(run(&s, &pkt), XDP_DROP);
    let ev = events(&s);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        ev[0].suppressed, 3,
        "the next window's first event carries the gap"
    );
    assert_eq!(ev[0].ts_ns, T0 + 1_000_000_000);
}

#[test]
fn pinned_blocklist_and_counters_survive_a_reload_and_pins_are_removed() {
    let root = std::path::PathBuf::from(format!(
        "/sys/fs/bpf/fathom-test-shield-{}",
        std::process::id()
    ));
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = fathom_bpf::shield::remove_pins(&self.0);
        }
    }
    let _g = Cleanup(root.clone());
    let net = parse_cidr("10.77.0.0/16").unwrap();
    {
        let mut s = Shield::load(Some(&root), &ShieldSettings::default()).unwrap();
        s.set_test_clock(T0).unwrap();
        s.block(&net, Some(T0 + 60_000_000_000), ORIGIN_OPERATOR)
            .unwrap();
        // A reason longer than the note slot is cut at a character boundary ("é" is 2 bytes).
        let long = format!("{}é-tail", "x".repeat(119));
        s.set_note(&net, Some(&long)).unwrap();
        assert_eq!(s.note(&net).as_deref(), Some("x".repeat(119).as_str()));
        s.set_note(&net, Some("scanner from the lab")).unwrap();
        assert_eq!(run(&s, &udp4([10, 77, 1, 1], b"x")), XDP_DROP);
    }
    for m in fathom_bpf::shield::PINNED_MAPS {
        assert!(root.join(m).exists(), "{m} pinned");
    }
    let mut s = Shield::load(Some(&root), &ShieldSettings::default()).unwrap();
    s.set_test_clock(T0).unwrap();
    let b = s.blocks();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].cidr, net);
    assert_eq!(b[0].expires_ns, Some(T0 + 60_000_000_000));
    assert_eq!(b[0].reason.as_deref(), Some("scanner from the lab"));
    assert_eq!(s.counters().drop_count(ShieldReason::Blocklist), 1);
    assert_eq!(run(&s, &udp4([10, 77, 1, 1], b"x")), XDP_DROP);
    // Unblocking forgets the reason too.
    assert!(s.unblock(&net).unwrap());
    assert_eq!(s.note(&net), None);
    drop(s);
    let removed = fathom_bpf::shield::remove_pins(&root).unwrap();
    assert_eq!(removed.len(), fathom_bpf::shield::PINNED_MAPS.len());
    assert!(!root.exists());
}
