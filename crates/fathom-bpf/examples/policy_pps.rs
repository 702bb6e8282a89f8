//! Attach policy.bpf.c with a 10k-entry policy to one interface, for `scripts/bench-policy-pps.sh`
//! (lab packets per second through a veth: no filter vs 10k iptables rules vs this).
//!
//! Usage (as root, inside the netns that holds the interface):
//!   policy_pps IFNAME SRC_IPV4 UDP_PORT [--no-conntrack]
//! The interface is the router-side veth towards the receiver: its TC egress is the receiving
//! endpoint's INGRESS, judged against the sender's identity (SRC_IPV4 in the ipcache). The
//! policy holds 10,000 map entries: 100 endpoints x (a default-deny root, a per-peer root
//! and 98 exact UDP ports); the endpoint under test is one of them and its 98 ports include
//! UDP_PORT (the last) and TCP UDP_PORT (the first: iperf3's control connection), so the flow
//! is ALLOWED (the bench measures the lookup, not drops) and everything else to it from
//! SRC_IPV4 is denied. Prints `ready` once attached, waits
//! until stdin closes, prints the datapath's counters and detaches (on drop).

use std::io::Read;
use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use fathom_bpf::abi::policy::POLICY_LEVEL_EXACT;
use fathom_bpf::policy::{PolicyConfig, PolicyDatapath};

const ENTRIES: usize = 10_000;
const PER_ENDPOINT: usize = 100;
/// Endpoint id of the receiver (the others, 2..=100, only make the map big).
const ENDPOINT: u32 = 1;
const PEER_IDENTITY: u32 = 256;
const WORLD_IDENTITY: u32 = 2;
const UDP: u8 = 17;
const TCP: u8 = 6;
const ALLOW: u8 = 1;
const DENY: u8 = 2;

fn policy_key(prefixlen: u32, ep: u32, peer: u32, proto: u8, port: u16) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[0..4].copy_from_slice(&prefixlen.to_ne_bytes());
    k[4..8].copy_from_slice(&ep.to_ne_bytes());
    k[8..12].copy_from_slice(&peer.to_ne_bytes());
    k[12] = 0; // ingress of the endpoint
               // Bits beyond prefixlen are zero (policy.h): a root (72) names no protocol and no port.
    if prefixlen >= 80 {
        k[13] = proto;
    }
    if prefixlen >= 88 {
        k[14..16].copy_from_slice(&port.to_be_bytes());
    }
    k
}

fn policy_val(action: u8, levels: u8, rule_id: u32) -> [u8; 8] {
    let mut v = [0u8; 8];
    v[0] = action;
    v[1] = levels;
    v[4..8].copy_from_slice(&rule_id.to_ne_bytes());
    v
}

fn ipcache_key(prefixlen: u32, addr: Ipv4Addr) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[0..4].copy_from_slice(&prefixlen.to_ne_bytes());
    k[4..20].copy_from_slice(&addr.to_ipv6_mapped().octets());
    k
}

fn ipcache_val(identity: u32) -> [u8; 8] {
    let mut v = [0u8; 8];
    v[0..4].copy_from_slice(&identity.to_ne_bytes());
    v
}

type PolicyEntries = Vec<([u8; 16], [u8; 8])>;
type IpcacheEntries = Vec<([u8; 20], [u8; 8])>;

/// The 10k policy entries (the flow's port is the LAST of the endpoint's 98) and an ipcache
/// of 1,001 addresses (the sender is one of them, the rest are in 10.251.0.0/16).
fn entries(src: Ipv4Addr, port: u16) -> (PolicyEntries, IpcacheEntries) {
    let mut policy = Vec::with_capacity(ENTRIES);
    let mut rule = 0u32;
    for ep in 1..=(ENTRIES / PER_ENDPOINT) as u32 {
        policy.push((policy_key(72, ep, 0, 0, 0), policy_val(DENY, 0, 1)));
        policy.push((
            policy_key(72, ep, PEER_IDENTITY, 0, 0),
            policy_val(DENY, POLICY_LEVEL_EXACT, 1),
        ));
        for i in 0..(PER_ENDPOINT - 2) as u16 {
            rule += 1;
            // The endpoint under test allows UDP_PORT as its last rule; the other ports are
            // below it (and never equal to it).
            // The first one allows TCP to UDP_PORT: iperf3's control connection.
            let (proto, p) = if ep == ENDPOINT && i as usize == PER_ENDPOINT - 3 {
                (UDP, port)
            } else if ep == ENDPOINT && i == 0 {
                (TCP, port)
            } else {
                (UDP, port.wrapping_sub(1000).wrapping_add(i))
            };
            policy.push((
                policy_key(96, ep, PEER_IDENTITY, proto, p),
                policy_val(ALLOW, 0, rule + 2),
            ));
        }
    }
    let mut ipcache = vec![
        (
            ipcache_key(96, Ipv4Addr::UNSPECIFIED),
            ipcache_val(WORLD_IDENTITY),
        ),
        (ipcache_key(128, src), ipcache_val(PEER_IDENTITY)),
    ];
    for i in 0..(ENTRIES / 10) as u32 {
        let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 251, 0, 1)) + i);
        ipcache.push((ipcache_key(128, a), ipcache_val(PEER_IDENTITY + 1 + i)));
    }
    (policy, ipcache)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let conntrack = !args.iter().any(|a| a == "--no-conntrack");
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [ifname, src, port] = pos.as_slice() else {
        bail!("usage: policy_pps IFNAME SRC_IPV4 UDP_PORT [--no-conntrack]");
    };
    let src: Ipv4Addr = src
        .parse()
        .with_context(|| format!("SRC_IPV4 {src:?} is not an IPv4 address"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("UDP_PORT {port:?} is not a port"))?;
    if port < 1000 {
        bail!("UDP_PORT {port} must be >= 1000 (the other rules use the 98 ports below it)");
    }
    let cname = std::ffi::CString::new(ifname.as_str()).context("IFNAME has a NUL byte")?;
    // SAFETY: if_nametoindex only reads the NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        bail!("no interface {ifname:?} in this network namespace");
    }

    let cfg = PolicyConfig {
        policy_capacity: ENTRIES as u32 + 16,
        ipcache_capacity: (ENTRIES / 10) as u32 + 16,
        conntrack,
        ..PolicyConfig::default()
    };
    let mut dp = PolicyDatapath::load(&cfg).context("load policy.bpf.c (root?)")?;
    let (policy, ipcache) = entries(src, port);
    dp.apply(&policy, &ipcache)
        .context("apply the 10k entries")?;
    dp.set_endpoint(ifindex, ENDPOINT)
        .context("register the endpoint")?;
    let mode = dp.attach(ifindex).context("attach")?;
    println!(
        "ready: {} policy entries, {} ipcache entries, on {ifname} (ifindex {ifindex}, {mode:?}), conntrack {}",
        policy.len(),
        ipcache.len(),
        if conntrack { "on" } else { "off" }
    );

    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);

    for (name, n) in dp.stats() {
        println!("stat {name} {n}");
    }
    for (id, c) in dp.counters() {
        println!("counter {id} packets {}", c.packets);
    }
    dp.detach(ifindex);
    Ok(())
}
