//! XDP shield per-packet cost under BPF_PROG_TEST_RUN (the kernel times `repeat` runs of the
//! program over one packet and reports the mean). Pass and drop paths with an empty blocklist
//! and with 100k blocklist entries, printed as ns/packet with the ratio against the empty
//! blocklist measured in the same run. Needs root (loads BPF).

use std::net::Ipv4Addr;

use etherparse::PacketBuilder;
use fathom_bpf::shield::{parse_cidr, RateLimits, Shield, ShieldSettings, ORIGIN_OPERATOR};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

const REPEAT: u32 = 2_000_000;
const ENTRIES: u32 = 100_000;

fn udp4(src: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, [10, 9, 0, 2], 64)
        .udp(5000, 53)
        .write(&mut out, &[0; 18])
        .expect("packet");
    out
}

fn syn4(src: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, [10, 9, 0, 2], 64)
        .tcp(40000, 80, 1, 65535)
        .syn()
        .write(&mut out, &[])
        .expect("packet");
    out
}

/// Mean ns per packet over REPEAT runs, best of 3 (the machine is shared).
fn ns_per_packet(s: &Shield, pkt: &[u8]) -> f64 {
    (0..3)
        .map(|_| {
            let (_, d) = s.test_run(pkt, REPEAT).expect("test run");
            d.as_nanos() as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// 100k entries spread like a real blocklist: /32 hosts, /24 networks and IPv6 /64s.
fn fill(s: &Shield) {
    for i in 0..ENTRIES {
        let net = match i % 4 {
            0 | 1 => IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x6400_0000 + i * 7), 32).unwrap()),
            2 => IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0xac00_0000 + (i << 8)), 24).unwrap()),
            _ => IpNet::V6(
                Ipv6Net::new(((0x2001_0db8u128 << 96) | ((i as u128) << 64)).into(), 64).unwrap(),
            ),
        };
        s.block(&net.trunc(), None, ORIGIN_OPERATOR)
            .expect("blocklist insert");
    }
}

fn main() {
    let settings = ShieldSettings::default();
    let Ok(empty) = Shield::load(None, &settings) else {
        eprintln!("shield bench: cannot load BPF (not root?): skipped");
        return;
    };
    let full = Shield::load(None, &settings).expect("load");
    fill(&full);
    let blocked_host = [100, 0, 0, 0]; // entry 0: 100.0.0.0/32
    full.block(
        &parse_cidr("198.51.100.0/24").unwrap(),
        None,
        ORIGIN_OPERATOR,
    )
    .unwrap();
    empty
        .block(
            &parse_cidr("198.51.100.0/24").unwrap(),
            None,
            ORIGIN_OPERATOR,
        )
        .unwrap();
    let clean = udp4([192, 0, 2, 1]);

    println!("XDP shield, BPF_PROG_TEST_RUN, {REPEAT} runs per figure (best of 3)");
    println!(
        "{:<46} {:>10} {:>10} {:>8}",
        "path", "empty", "100k", "ratio"
    );
    let rows: [(&str, Vec<u8>, Vec<u8>); 3] = [
        ("pass (source in no list)", clean.clone(), clean.clone()),
        (
            "drop (blocklisted source)",
            udp4([198, 51, 100, 7]),
            udp4(blocked_host),
        ),
        (
            "drop (malformed: TCP SYN+FIN)",
            {
                let mut p = syn4([192, 0, 2, 1]);
                p[47] |= 0x01;
                p
            },
            {
                let mut p = syn4([192, 0, 2, 1]);
                p[47] |= 0x01;
                p
            },
        ),
    ];
    for (name, pe, pf) in rows {
        let (re, _) = empty.test_run(&pe, 1).unwrap();
        let (rf, _) = full.test_run(&pf, 1).unwrap();
        assert_eq!(re, rf, "{name}: both shields must agree on the verdict");
        let e = ns_per_packet(&empty, &pe);
        let f = ns_per_packet(&full, &pf);
        println!("{name:<46} {e:>8.1}ns {f:>8.1}ns {:>7.2}x", f / e);
    }

    // Rate limiting adds a bucket lookup and update per packet.
    let limited = Shield::load(
        None,
        &ShieldSettings {
            rates: RateLimits {
                packets_per_sec: 1_000_000_000,
                packet_burst: 1_000_000_000,
                syn_per_sec: 1_000_000_000,
                syn_burst: 1_000_000_000,
            },
            ..settings
        },
    )
    .expect("load");
    let base = ns_per_packet(&empty, &syn4([192, 0, 2, 1]));
    let rl = ns_per_packet(&limited, &syn4([192, 0, 2, 1]));
    println!(
        "{:<46} {base:>8.1}ns {rl:>8.1}ns {:>7.2}x  (no limits vs SYN+packet buckets)",
        "pass SYN, rate limits on",
        rl / base
    );
    println!("(orientation: XDP drop at 24 Mpps per core is about 42 ns per packet)");
}
