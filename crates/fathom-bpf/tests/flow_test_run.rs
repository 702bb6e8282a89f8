//! flow.bpf.c under BPF_PROG_TEST_RUN: crafted packets in, exact flow-table contents, counters
//! and ringbuf events out. Needs root (loads BPF programs); nothing is attached anywhere.

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use etherparse::PacketBuilder;
use fathom_bpf::abi::{self, Counter, FlowKeyRaw, FlowValueRaw};
use fathom_bpf::events::{ip_from_raw, FlowEndKind, KernelEvent};
use fathom_bpf::features::FeatureReport;
use fathom_bpf::flowtable;
use fathom_bpf::sensors::{SensorConfig, Sensors, TestRunCtx};

const TC_ACT_UNSPEC: i32 = -1;
const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];
const C4: [u8; 4] = [10, 9, 0, 1];
const S4: [u8; 4] = [10, 9, 0, 2];

fn sensors() -> Sensors {
    let cfg = SensorConfig {
        sock: false,
        proc: false,
        drop: false,
        ..Default::default()
    };
    Sensors::load(&cfg, &FeatureReport::default()).expect("load flow.bpf.c (are we root?)")
}

fn run(s: &Sensors, pkt: &[u8]) {
    let (ret, _) = s.test_run_flow(true, pkt, 1).expect("test run");
    assert_eq!(
        ret, TC_ACT_UNSPEC,
        "the observer must never change a packet's fate"
    );
}

fn flows(s: &Sensors) -> Vec<(FlowKeyRaw, FlowValueRaw)> {
    flowtable::snapshot(&s.flow_table().unwrap())
}

fn counter(s: &Sensors, c: Counter) -> u64 {
    s.counters()["flow"][c as usize]
}

/// The single flow in the table, with per-direction indexes resolved: (key, value, client idx).
fn only_flow(s: &Sensors, client: IpAddr, client_port: u16) -> (FlowKeyRaw, FlowValueRaw, usize) {
    let f = flows(s);
    assert_eq!(f.len(), 1, "expected exactly one flow, got {f:#?}");
    let (k, v) = f[0];
    let lo = (ip_from_raw(&k.addr_lo), k.port_lo);
    let c = if lo == (client, client_port) { 0 } else { 1 };
    (k, v, c)
}

fn tcp4(from_client: bool, flags: &str, seq: u32, payload: &[u8]) -> Vec<u8> {
    let (sm, dm, sa, da, sp, dp) = if from_client {
        (MAC_A, MAC_B, C4, S4, 40000, 80)
    } else {
        (MAC_B, MAC_A, S4, C4, 80, 40000)
    };
    let mut b = PacketBuilder::ethernet2(sm, dm)
        .ipv4(sa, da, 64)
        .tcp(sp, dp, seq, 65535);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(1),
            'F' => b.fin(),
            'R' => b.rst(),
            'P' => b.psh(),
            _ => panic!("flag {f}"),
        };
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn udp4(sa: [u8; 4], sp: u16, da: [u8; 4], dp: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(sa, da, 64)
        .udp(sp, dp)
        .write(&mut out, payload)
        .unwrap();
    out
}

fn events(s: &Sensors) -> Vec<KernelEvent> {
    let got = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&got);
    let rb = s.ring_buffer(move |e| sink.borrow_mut().push(e)).unwrap();
    rb.poll(Duration::from_millis(50)).unwrap();
    drop(rb);
    Rc::try_unwrap(got)
        .map(|c| c.into_inner())
        .unwrap_or_default()
}

#[test]
fn tcp_conversation_is_one_flow_with_exact_counters_and_events() {
    let s = sensors();
    let req = [b'q'; 100];
    let resp = [b'r'; 200];
    for (client, flags, payload) in [
        (true, "S", &[][..]),
        (false, "SA", &[]),
        (true, "A", &[]),
        (true, "PA", &req[..]),
        (false, "PA", &resp[..]),
        (true, "FA", &[]),
        (false, "FA", &[]),
        (true, "A", &[]),
    ] {
        run(&s, &tcp4(client, flags, 1, payload));
    }
    let (k, v, c) = only_flow(&s, IpAddr::from(C4), 40000);
    let srv = 1 - c;
    assert_eq!(k.proto, 6);
    assert_eq!(k.family, abi::AF_INET);
    assert_eq!(v.initiator as usize, c, "the SYN sender opened the flow");
    assert_eq!(v.packets[c], 5);
    assert_eq!(v.packets[srv], 3);
    assert_eq!(v.payload_bytes[c], 100);
    assert_eq!(v.payload_bytes[srv], 200);
    // IPv4 (20) + TCP (20) per packet, plus payload.
    assert_eq!(v.bytes[c], 5 * 40 + 100);
    assert_eq!(v.bytes[srv], 3 * 40 + 200);
    assert_eq!(v.tcp_flags[c], 0x02 | 0x10 | 0x08 | 0x01);
    assert_eq!(v.tcp_flags[srv], 0x02 | 0x10 | 0x08 | 0x01);
    assert_eq!(
        v.state,
        abi::FLOW_FIN_LO | abi::FLOW_FIN_HI | abi::FLOW_END_SENT
    );
    assert!(v.last_seen_ns >= v.first_seen_ns && v.first_seen_ns > 0);
    assert_eq!(counter(&s, Counter::FlowsCreated), 1);
    assert_eq!(counter(&s, Counter::Packets), 8);
    assert_eq!(counter(&s, Counter::EventsSent), 2);

    let ev = events(&s);
    assert_eq!(ev.len(), 2, "{ev:#?}");
    let KernelEvent::FlowStart(start) = &ev[0] else {
        panic!("first event {:?}", ev[0])
    };
    assert_eq!(start.key, k);
    assert_eq!(
        start.value.packets[c], 1,
        "start carries the first packet's counters"
    );
    let KernelEvent::FlowEnd(end, FlowEndKind::Fin) = &ev[1] else {
        panic!("second event {:?}", ev[1])
    };
    assert_eq!(
        end.value.packets[c], 4,
        "end is sent on the second FIN, before the last ACK"
    );
    assert_eq!(end.value.packets[srv], 3);
}

#[test]
fn rst_ends_a_flow_with_reason_rst() {
    let s = sensors();
    run(&s, &tcp4(true, "S", 1, &[]));
    run(&s, &tcp4(false, "RA", 0, &[]));
    let (_, v, c) = only_flow(&s, IpAddr::from(C4), 40000);
    assert_eq!(v.packets[c], 1);
    assert_eq!(v.packets[1 - c], 1);
    assert_eq!(v.tcp_flags[1 - c], 0x04 | 0x10);
    assert_eq!(v.state, abi::FLOW_RST | abi::FLOW_END_SENT);
    let ev = events(&s);
    assert!(
        matches!(ev.last(), Some(KernelEvent::FlowEnd(_, FlowEndKind::Rst))),
        "{ev:#?}"
    );
}

#[test]
fn udp_exchange_and_reply_first_pickup() {
    let s = sensors();
    run(&s, &udp4(C4, 5353, S4, 53, &[1; 30]));
    run(&s, &udp4(S4, 53, C4, 5353, &[2; 60]));
    let (k, v, c) = only_flow(&s, IpAddr::from(C4), 5353);
    assert_eq!(k.proto, 17);
    assert_eq!(v.initiator as usize, c);
    assert_eq!(v.packets, [1, 1]);
    assert_eq!(v.payload_bytes[c], 30);
    assert_eq!(v.payload_bytes[1 - c], 60);
    assert_eq!(v.bytes[c], 20 + 8 + 30);

    // A reply from a well-known port seen first: the receiver is the client.
    let s = sensors();
    run(&s, &udp4(S4, 53, C4, 40001, &[2; 10]));
    let (_, v, c) = only_flow(&s, IpAddr::from(C4), 40001);
    assert_eq!(v.initiator as usize, c);
    assert_eq!(v.packets[1 - c], 1);
}

#[test]
fn icmp_echo_request_and_reply_share_a_flow() {
    let s = sensors();
    let mut req = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(C4, S4, 64)
        .icmpv4_echo_request(0x1234, 1)
        .write(&mut req, &[0; 56])
        .unwrap();
    let mut rep = Vec::new();
    PacketBuilder::ethernet2(MAC_B, MAC_A)
        .ipv4(S4, C4, 64)
        .icmpv4_echo_reply(0x1234, 1)
        .write(&mut rep, &[0; 56])
        .unwrap();
    run(&s, &req);
    run(&s, &rep);
    let (k, v, c) = only_flow(&s, IpAddr::from(C4), 0x1234);
    assert_eq!(k.proto, 1);
    assert_eq!((k.port_lo, k.port_hi), (0x1234, 0x1234));
    assert_eq!(v.initiator as usize, c);
    assert_eq!(v.packets, [1, 1]);
    assert_eq!(v.payload_bytes[c], 56);
    assert_eq!(v.icmp_type, 0, "last ICMP type seen is the echo reply");
}

#[test]
fn ipv6_tcp_and_icmpv6() {
    let s = sensors();
    let c6: [u8; 16] = "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
    let s6: [u8; 16] = "fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
    let mut syn = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(c6, s6, 64)
        .tcp(40000, 443, 1, 65535)
        .syn()
        .write(&mut syn, &[])
        .unwrap();
    run(&s, &syn);
    let (k, v, c) = only_flow(&s, "fd00::1".parse().unwrap(), 40000);
    assert_eq!(k.family, abi::AF_INET6);
    assert_eq!(v.bytes[c], 40 + 20);
    assert_eq!(v.tcp_flags[c], 0x02);

    let s = sensors();
    let mut echo = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(c6, s6, 64)
        .icmpv6_echo_request(7, 1)
        .write(&mut echo, &[0; 8])
        .unwrap();
    run(&s, &echo);
    let (k, v, c) = only_flow(&s, "fd00::1".parse().unwrap(), 7);
    assert_eq!(k.proto, 58);
    assert_eq!(v.initiator as usize, c);
    assert_eq!(v.icmp_type, 128);
}

#[test]
fn vlan_tagged_frames_are_parsed() {
    let s = sensors();
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(etherparse::VlanId::try_new(42).unwrap())
        .ipv4(C4, S4, 64)
        .udp(1000, 2000)
        .write(&mut out, &[0; 12])
        .unwrap();
    run(&s, &out);
    let (k, v, c) = only_flow(&s, IpAddr::from(C4), 1000);
    assert_eq!(k.proto, 17);
    assert_eq!(
        (k.port_lo.min(k.port_hi), k.port_lo.max(k.port_hi)),
        (1000, 2000)
    );
    assert_eq!(v.payload_bytes[c], 12);
}

/// Ethernet + hand-made IPv4 header with `options`, then `l4`.
fn ipv4_raw(options: &[u8], proto: u8, l4: &[u8], frag_field: u16, id: u16) -> Vec<u8> {
    let ihl = (20 + options.len()) / 4;
    let tot = (ihl * 4 + l4.len()) as u16;
    let mut p = Vec::new();
    p.extend_from_slice(&MAC_B);
    p.extend_from_slice(&MAC_A);
    p.extend_from_slice(&[0x08, 0x00]);
    p.push(0x40 | ihl as u8);
    p.push(0);
    p.extend_from_slice(&tot.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&frag_field.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]); // checksum left 0: offloaded checksums are normal
    p.extend_from_slice(&C4);
    p.extend_from_slice(&S4);
    p.extend_from_slice(options);
    p.extend_from_slice(l4);
    p
}

fn udp_hdr(sp: u16, dp: u16, payload_len: usize) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sp.to_be_bytes());
    h.extend_from_slice(&dp.to_be_bytes());
    h.extend_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    h
}

#[test]
fn ipv4_options_are_skipped() {
    let s = sensors();
    let mut l4 = udp_hdr(3000, 4000, 10);
    l4.extend_from_slice(&[9; 10]);
    run(&s, &ipv4_raw(&[1, 1, 1, 0], 17, &l4, 0, 1)); // NOP NOP NOP EOL
    let (k, v, c) = only_flow(&s, IpAddr::from(C4), 3000);
    assert_eq!(
        (k.port_lo.min(k.port_hi), k.port_lo.max(k.port_hi)),
        (3000, 4000)
    );
    assert_eq!(v.bytes[c], 24 + 8 + 10);
    assert_eq!(v.payload_bytes[c], 10);
}

#[test]
fn ipv4_fragments_share_the_first_fragments_ports() {
    let s = sensors();
    // First fragment: MF, offset 0, UDP header + 16 bytes; second: offset 3 (24 bytes), 20 bytes.
    let mut first = udp_hdr(5000, 6000, 36);
    first.extend_from_slice(&[1; 16]);
    run(&s, &ipv4_raw(&[], 17, &first, 0x2000, 77));
    run(&s, &ipv4_raw(&[], 17, &[2; 20], 3, 77));
    let (k, v, c) = only_flow(&s, IpAddr::from(C4), 5000);
    assert_eq!(
        (k.port_lo.min(k.port_hi), k.port_lo.max(k.port_hi)),
        (5000, 6000)
    );
    assert_eq!(v.packets[c], 2);
    assert_eq!(v.payload_bytes[c], 16 + 20);
    assert_eq!(counter(&s, Counter::Fragments), 2);
    assert_eq!(counter(&s, Counter::FragUnknown), 0);
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let s = sensors();
    let c6 = "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
    let s6 = "fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
    // Hop-by-hop (8 bytes, PadN) → destination options (8 bytes) → UDP.
    let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0];
    ext.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
    let mut l4 = udp_hdr(7000, 8000, 5);
    l4.extend_from_slice(&[3; 5]);
    let payload_len = (ext.len() + l4.len()) as u16;
    let mut p = Vec::new();
    p.extend_from_slice(&MAC_B);
    p.extend_from_slice(&MAC_A);
    p.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    p.extend_from_slice(&payload_len.to_be_bytes());
    p.extend_from_slice(&[0 /* hop-by-hop */, 64]);
    p.extend_from_slice(&c6);
    p.extend_from_slice(&s6);
    p.extend_from_slice(&ext);
    p.extend_from_slice(&l4);
    run(&s, &p);
    let (k, v, c) = only_flow(&s, "fd00::1".parse().unwrap(), 7000);
    assert_eq!(k.proto, 17);
    assert_eq!(v.payload_bytes[c], 5);
    assert_eq!(v.bytes[c], 40 + 16 + 8 + 5);
}

#[test]
fn truncated_malformed_and_non_ip_are_counted_not_accounted() {
    let s = sensors();
    // IPv4 header claims 100 bytes, only 20 + 8 present.
    let mut p = ipv4_raw(&[], 17, &udp_hdr(1, 2, 0), 0, 1);
    p[16..18].copy_from_slice(&100u16.to_be_bytes());
    run(&s, &p);
    // TCP header cut short: 10 of 20 bytes.
    run(&s, &ipv4_raw(&[], 6, &[0; 10], 0, 2));
    // IPv6 header announcing 8 bytes of payload that are not there. (A frame shorter than its
    // IP header never reaches the program: the kernel's test run refuses it, as the stack would.)
    let mut v6 = vec![0u8; 14 + 40];
    v6[12] = 0x86;
    v6[13] = 0xdd;
    v6[14] = 0x60;
    v6[19] = 8;
    v6[20] = 17;
    run(&s, &v6);
    assert_eq!(counter(&s, Counter::Truncated), 3);

    // Version 5, then IHL 3, then TCP data offset 2.
    let mut v5 = ipv4_raw(&[], 17, &udp_hdr(1, 2, 0), 0, 4);
    v5[14] = 0x55;
    run(&s, &v5);
    let mut ihl3 = ipv4_raw(&[], 17, &udp_hdr(1, 2, 0), 0, 5);
    ihl3[14] = 0x43;
    run(&s, &ihl3);
    let mut tcp = vec![0u8; 20];
    tcp[12] = 0x20;
    run(&s, &ipv4_raw(&[], 6, &tcp, 0, 6));
    assert_eq!(counter(&s, Counter::Malformed), 3);

    // ARP.
    let mut arp = vec![0u8; 42];
    arp[12] = 0x08;
    arp[13] = 0x06;
    run(&s, &arp);
    assert_eq!(counter(&s, Counter::NonIp), 1);
    // Garbage shorter than an Ethernet header is refused by the kernel before the program
    // runs; 14 bytes of noise are not.
    run(&s, &[0xff; 14]);

    assert!(
        flows(&s).is_empty(),
        "nothing malformed may create a flow: {:#?}",
        flows(&s)
    );
    assert_eq!(counter(&s, Counter::Packets), 0);
}

#[test]
fn egress_of_a_packet_counted_at_a_watched_ingress_is_skipped() {
    let s = sensors();
    // The packet leaves through lo (the test run's device) after entering on watched ifindex 999.
    s.set_watched(
        999,
        abi::IFACE_L2_ETHER | abi::IFACE_COUNT_INGRESS | abi::IFACE_COUNT_EGRESS,
    )
    .unwrap();
    let pkt = udp4(C4, 1111, S4, 2222, &[0; 4]);
    let r = s
        .test_run_flow_ctx(
            false,
            &pkt,
            TestRunCtx {
                ingress_ifindex: 999,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r, TC_ACT_UNSPEC);
    assert_eq!(counter(&s, Counter::DupSkipped), 1);
    assert!(flows(&s).is_empty());
    // Entered on an interface we do not watch: counted here.
    s.test_run_flow_ctx(
        false,
        &pkt,
        TestRunCtx {
            ingress_ifindex: 998,
            ..Default::default()
        },
    )
    .unwrap();
    // Locally generated (no ingress interface): counted too.
    s.test_run_flow_ctx(false, &pkt, TestRunCtx::default())
        .unwrap();
    let (_, v, c) = only_flow(&s, IpAddr::from(C4), 1111);
    assert_eq!(v.packets[c], 2);
    assert_eq!(counter(&s, Counter::DupSkipped), 1);
}

#[test]
fn gso_super_packets_count_every_segment() {
    let s = sensors();
    let pkt = tcp4(true, "PA", 1, &[0; 3000]);
    s.test_run_flow_ctx(
        true,
        &pkt,
        TestRunCtx {
            gso_segs: 3,
            gso_size: 1000,
            ..Default::default()
        },
    )
    .unwrap();
    let (_, v, c) = only_flow(&s, IpAddr::from(C4), 40000);
    assert_eq!(v.packets[c], 3);
    assert_eq!(v.payload_bytes[c], 3000);
    assert_eq!(
        v.bytes[c],
        3000 + 3 * 40,
        "each segment carries its own IP+TCP headers"
    );
}

#[test]
fn loopback_ingress_is_not_counted_when_flags_say_egress_only() {
    let s = sensors();
    s.set_watched(1, abi::IFACE_L2_ETHER | abi::IFACE_COUNT_EGRESS)
        .unwrap();
    let pkt = udp4(C4, 1, S4, 2, &[]);
    run(&s, &pkt); // ingress on ifindex 1 (lo)
    assert!(flows(&s).is_empty());
    s.test_run_flow(false, &pkt, 1).unwrap();
    assert_eq!(flows(&s).len(), 1);
}

#[test]
fn syn_after_end_starts_a_new_flow_on_the_same_tuple() {
    let s = sensors();
    run(&s, &tcp4(true, "S", 1, &[]));
    run(&s, &tcp4(false, "RA", 0, &[]));
    run(&s, &tcp4(true, "A", 2, &[])); // late packet of the old connection: same flow
    let (_, v, c) = only_flow(&s, IpAddr::from(C4), 40000);
    assert_eq!(v.packets[c], 2);
    run(&s, &tcp4(true, "S", 100, &[])); // new connection, same ports
    let (_, v, c) = only_flow(&s, IpAddr::from(C4), 40000);
    assert_eq!(v.packets[c], 1);
    assert_eq!(v.state, 0);
    assert_eq!(counter(&s, Counter::FlowsCreated), 2);
    let starts = events(&s)
        .iter()
        .filter(|e| matches!(e, KernelEvent::FlowStart(_)))
        .count();
    assert_eq!(starts, 2);
}

#[test]
fn table_snapshot_reads_every_entry_across_batches() {
    // More flows than one batch (1024) so the batch token is exercised.
    let s = sensors();
    for i in 0..3000u32 {
        let sa = [10, 1, (i >> 8) as u8, i as u8];
        run(&s, &udp4(sa, 1000 + (i % 50) as u16, S4, 53, &[0; 1]));
    }
    let table = s.flow_table().unwrap();
    let snap = flowtable::snapshot(&table);
    assert_eq!(snap.len(), 3000);
    let mut uniq: Vec<_> = snap.iter().map(|(k, _)| *k).collect();
    uniq.sort_by_key(|k| (k.addr_lo, k.addr_hi, k.port_lo, k.port_hi));
    uniq.dedup();
    assert_eq!(uniq.len(), 3000, "no entry twice");
    assert!(snap.iter().all(|(_, v)| v.packets[0] + v.packets[1] == 1));
}
