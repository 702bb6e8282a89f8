//! Shared by the policy kernel tests: crafted frames and a loaded datapath with helpers that
//! run one packet through one endpoint's hook and return the kernel's decision.
#![allow(dead_code)]

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use fathom_bpf::policy::{ApplyReport, PolicyConfig, PolicyDatapath, PolicyVerdictEvent};
use fathom_policy::{Compiled, L4};
use libbpf_rs::RingBuffer;

pub const TC_PASS: i32 = -1;
pub const TC_DROP: i32 = 2;
/// BPF_PROG_TEST_RUN's device is the loopback interface.
pub const TEST_IFINDEX: u32 = 1;

/// One Ethernet frame: IPv4 or IPv6 (by the addresses' family) with a minimal L4 header.
pub fn frame(src: IpAddr, dst: IpAddr, l4: L4, sport: u16) -> Vec<u8> {
    let (proto, l4_bytes) = l4_header(l4, sport);
    let mut out = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend_from_slice(&[0x08, 0x00]);
            let total = (20 + l4_bytes.len()) as u16;
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let to6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.extend_from_slice(&[0x86, 0xdd]);
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&(l4_bytes.len() as u16).to_be_bytes());
            out.extend_from_slice(&[proto, 64]);
            out.extend_from_slice(&to6(s).octets());
            out.extend_from_slice(&to6(d).octets());
        }
    }
    out.extend_from_slice(&l4_bytes);
    out
}

fn l4_header(l4: L4, sport: u16) -> (u8, Vec<u8>) {
    let ports = |dport: u16| {
        let mut b = sport.to_be_bytes().to_vec();
        b.extend_from_slice(&dport.to_be_bytes());
        b
    };
    match l4.normalized() {
        L4::Tcp { dport } => {
            let mut b = ports(dport);
            b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
            (6, b)
        }
        L4::Udp { dport } => {
            let mut b = ports(dport);
            b.extend_from_slice(&[0, 8, 0, 0]);
            (17, b)
        }
        L4::Sctp { dport } => {
            // Common header: ports, verification tag, checksum; then an INIT chunk header.
            let mut b = ports(dport);
            b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 20]);
            b.extend_from_slice(&[0; 16]);
            (132, b)
        }
        L4::Icmp { icmp_type, code } => (1, icmp(icmp_type, code, sport)),
        L4::Icmpv6 { icmp_type, code } => (58, icmp(icmp_type, code, sport)),
        L4::Other(p) => (p, vec![0; 8]),
    }
}

fn icmp(t: u8, c: u8, id: u16) -> Vec<u8> {
    let mut b = vec![t, c, 0, 0];
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&[0, 1]);
    b
}

/// A loaded datapath plus an event collector.
pub struct Kernel {
    pub dp: PolicyDatapath,
    events: Rc<RefCell<Vec<PolicyVerdictEvent>>>,
    rb: RingBuffer<'static>,
}

impl Kernel {
    pub fn load(cfg: &PolicyConfig) -> Self {
        let dp = PolicyDatapath::load(cfg).expect("load policy.bpf.c (are we root?)");
        let events = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&events);
        let rb = dp
            .ring_buffer(move |e| sink.borrow_mut().push(e))
            .expect("ringbuf");
        Self { dp, events, rb }
    }

    pub fn apply(&mut self, c: &Compiled) -> ApplyReport {
        let (policy, ipcache) = map_entries(c);
        self.dp.apply(&policy, &ipcache).expect("apply")
    }

    /// Events since the last call.
    pub fn events(&self) -> Vec<PolicyVerdictEvent> {
        let _ = self.rb.consume();
        std::mem::take(&mut *self.events.borrow_mut())
    }

    /// Run one frame through `endpoint`'s hook; returns (TC verdict, events it produced).
    pub fn run(
        &self,
        endpoint: u32,
        to_endpoint: bool,
        frame: &[u8],
    ) -> (i32, Vec<PolicyVerdictEvent>) {
        self.dp
            .set_endpoint(TEST_IFINDEX, endpoint)
            .expect("endpoint");
        let (ret, _) = self.dp.test_run(to_endpoint, frame, 1).expect("test run");
        (ret, self.events())
    }

    pub fn poll(&self) {
        let _ = self.rb.poll(Duration::from_millis(1));
    }
}

/// Policy map entries as the datapath takes them.
pub type PolicyEntries = Vec<([u8; 16], [u8; 8])>;
/// Ipcache entries as the datapath takes them.
pub type IpcacheEntries = Vec<([u8; 20], [u8; 8])>;

/// A compiled policy's map entries as the datapath takes them: (policy, ipcache).
pub fn map_entries(c: &Compiled) -> (PolicyEntries, IpcacheEntries) {
    let policy = c
        .policy_map_entries()
        .iter()
        .map(|(k, v)| (k.to_bytes(), v.to_bytes()))
        .collect();
    let ipcache = c
        .ipcache_map_entries()
        .iter()
        .map(|(k, v)| (k.to_bytes(), v.to_bytes()))
        .collect();
    (policy, ipcache)
}
