//! Decoding of ringbuf records into typed kernel events (the "sources decode" stage). A record
//! that is too short or of an unknown type decodes to `None` and is counted by the caller:
//! the kernel is input like any other.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::abi::{self, c_str, FlowKeyRaw, FlowValueRaw, Pod};

/// A 16-byte address as stored by the kernel side: IPv4 is IPv4-mapped (::ffff:a.b.c.d).
pub fn ip_from_raw(raw: &[u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(*raw);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

pub fn ip_to_raw(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

pub fn unspecified(family: u8) -> IpAddr {
    if family == abi::AF_INET6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowEndKind {
    Fin,
    Rst,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowEventData {
    pub ts_ns: u64,
    pub key: FlowKeyRaw,
    pub value: FlowValueRaw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockEventKind {
    Connect,
    Accept,
    Close,
    /// First datagram of a non-TCP socket to a peer.
    Tuple,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockEvent {
    pub kind: SockEventKind,
    pub ts_ns: u64,
    /// tgid; 0 when not known (close in softirq).
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub cgroup_id: u64,
    pub proto: u8,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub failed: bool,
    pub cookie: u64,
    pub handshake_ns: u64,
    pub srtt_us: u32,
    pub retransmits: u32,
    pub bytes_acked: u64,
    pub bytes_received: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcEvent {
    pub exec: bool,
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub cgroup_id: u64,
    pub comm: String,
    pub filename: String,
    pub exit_code: i32,
}

/// A packet the kernel dropped. Addresses are present when the packet was IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropEvent {
    pub ts_ns: u64,
    pub reason: u32,
    pub location: u64,
    pub ifindex: u32,
    pub netns: u32,
    pub len: u32,
    /// Drops of this reason not reported since the previous event (rate limit).
    pub suppressed: u32,
    pub l3_proto: u16,
    pub proto: Option<u8>,
    pub source: Option<SocketAddr>,
    pub destination: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    FlowStart(FlowEventData),
    FlowEnd(FlowEventData, FlowEndKind),
    Sock(SockEvent),
    Proc(ProcEvent),
    Drop(DropEvent),
    /// Socket payload from the live L7 capture (l7.bpf.c / tls.bpf.c).
    L7(crate::l7::L7Event),
}

fn record_type(bytes: &[u8]) -> Option<u32> {
    bytes
        .get(..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

pub fn decode(bytes: &[u8]) -> Option<KernelEvent> {
    match record_type(bytes)? {
        abi::EV_FLOW_START | abi::EV_FLOW_END => {
            let e = abi::FlowEventRaw::from_bytes(bytes)?;
            let data = FlowEventData {
                ts_ns: e.ts_ns,
                key: e.key,
                value: e.value,
            };
            Some(match (e.r#type, e.end_reason) {
                (abi::EV_FLOW_START, _) => KernelEvent::FlowStart(data),
                (_, abi::END_RST) => KernelEvent::FlowEnd(data, FlowEndKind::Rst),
                _ => KernelEvent::FlowEnd(data, FlowEndKind::Fin),
            })
        }
        t @ (abi::EV_SOCK_CONNECT
        | abi::EV_SOCK_ACCEPT
        | abi::EV_SOCK_CLOSE
        | abi::EV_SOCK_TUPLE) => {
            let e = abi::SockEventRaw::from_bytes(bytes)?;
            let kind = match t {
                abi::EV_SOCK_CONNECT => SockEventKind::Connect,
                abi::EV_SOCK_ACCEPT => SockEventKind::Accept,
                abi::EV_SOCK_CLOSE => SockEventKind::Close,
                _ => SockEventKind::Tuple,
            };
            Some(KernelEvent::Sock(SockEvent {
                kind,
                ts_ns: e.ts_ns,
                pid: e.pid,
                tid: e.tid,
                comm: c_str(&e.comm),
                cgroup_id: e.cgroup_id,
                proto: e.proto,
                local: SocketAddr::new(ip_from_raw(&e.local_addr), e.local_port),
                remote: SocketAddr::new(ip_from_raw(&e.remote_addr), e.remote_port),
                failed: e.failed != 0,
                cookie: e.cookie,
                handshake_ns: e.handshake_ns,
                srtt_us: e.srtt_us,
                retransmits: e.retransmits,
                bytes_acked: e.bytes_acked,
                bytes_received: e.bytes_received,
            }))
        }
        t @ (abi::EV_PROC_EXEC | abi::EV_PROC_EXIT) => {
            let e = abi::ProcEventRaw::from_bytes(bytes)?;
            Some(KernelEvent::Proc(ProcEvent {
                exec: t == abi::EV_PROC_EXEC,
                ts_ns: e.ts_ns,
                pid: e.pid,
                tid: e.tid,
                ppid: e.ppid,
                cgroup_id: e.cgroup_id,
                comm: c_str(&e.comm),
                filename: c_str(&e.filename),
                exit_code: e.exit_code,
            }))
        }
        abi::EV_DROP => {
            let e = abi::DropEventRaw::from_bytes(bytes)?;
            let ip = e.family == abi::AF_INET || e.family == abi::AF_INET6;
            Some(KernelEvent::Drop(DropEvent {
                ts_ns: e.ts_ns,
                reason: e.reason,
                location: e.location,
                ifindex: e.ifindex,
                netns: e.netns,
                len: e.len,
                suppressed: e.suppressed,
                l3_proto: e.l3_proto,
                proto: ip.then_some(e.proto),
                source: ip.then(|| SocketAddr::new(ip_from_raw(&e.saddr), e.sport)),
                destination: ip.then(|| SocketAddr::new(ip_from_raw(&e.daddr), e.dport)),
            }))
        }
        abi::l7::EV_L7_DATA | abi::l7::EV_L7_CLOSE => crate::l7::decode(bytes).map(KernelEvent::L7),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_round_trip() {
        for ip in ["10.1.2.3", "fd00::1", "::1", "127.0.0.1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_from_raw(&ip_to_raw(ip)), ip);
        }
    }

    #[test]
    fn garbage_records_decode_to_none() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[1, 0, 0]), None);
        assert_eq!(decode(&[1, 0, 0, 0, 0]), None, "flow start too short");
        assert_eq!(decode(&99u32.to_ne_bytes()), None, "unknown type");
    }

    #[test]
    fn sock_event_decodes_tuple_and_comm() {
        let mut raw = abi::SockEventRaw {
            r#type: abi::EV_SOCK_CONNECT,
            pid: 42,
            family: abi::AF_INET,
            proto: 6,
            local_port: 40000,
            remote_port: 80,
            handshake_ns: 1234,
            ..Default::default()
        };
        raw.local_addr = ip_to_raw("10.0.0.1".parse().unwrap());
        raw.remote_addr = ip_to_raw("10.0.0.2".parse().unwrap());
        raw.comm[..4].copy_from_slice(b"curl");
        let Some(KernelEvent::Sock(e)) = decode(raw.as_bytes()) else {
            panic!("not a sock event")
        };
        assert_eq!(e.kind, SockEventKind::Connect);
        assert_eq!(e.local, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(e.remote, "10.0.0.2:80".parse().unwrap());
        assert_eq!(e.comm, "curl");
        assert_eq!(e.pid, 42);
        assert_eq!(e.handshake_ns, 1234);
    }
}
