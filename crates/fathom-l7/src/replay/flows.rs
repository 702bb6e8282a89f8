//! Per-flow state while replaying: identity, orientation (who is the client), counters, the
//! two TCP half-streams and the L7 connection fed by them.

use std::net::{IpAddr, SocketAddr};

use fathom_model::{
    Endpoint, Flow, FlowEndReason, FlowEvent, InterfaceRef, L4Info, L4Protocol, TcpFlags, TcpInfo,
    Timestamp, Traffic,
};

use crate::capture::tcp::{HalfStream, TcpLimits};
use crate::session::Connection;

/// Canonical 5-tuple: the lower (ip, port) first, so both directions find the same flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub proto: u8,
    pub lo: (IpAddr, u16),
    pub hi: (IpAddr, u16),
}

impl FlowKey {
    pub fn new(proto: u8, a: (IpAddr, u16), b: (IpAddr, u16)) -> Self {
        if a <= b {
            FlowKey {
                proto,
                lo: a,
                hi: b,
            }
        } else {
            FlowKey {
                proto,
                lo: b,
                hi: a,
            }
        }
    }
}

/// FNV-1a, 64 bits: stable across runs, platforms and Rust versions (unlike `DefaultHasher`),
/// which is what a flow id printed by one run and searched for in another needs.
pub fn flow_id(proto: u8, client: (IpAddr, u16), server: (IpAddr, u16), first_seen: u64) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&[proto]);
    for (ip, port) in [client, server] {
        match ip {
            IpAddr::V4(v) => eat(&v.octets()),
            IpAddr::V6(v) => eat(&v.octets()),
        }
        eat(&port.to_be_bytes());
    }
    eat(&first_seen.to_be_bytes());
    format!("{h:016x}")
}

/// Whether `port` looks like a service (server) port rather than an ephemeral one.
fn service_port(port: u16) -> bool {
    port < 1024
}

/// For a flow whose opening packet was not seen: is the packet's destination the server?
/// Only the port numbers hint at it; with no hint the sender is taken as the client.
pub fn dst_is_server(src_port: u16, dst_port: u16) -> bool {
    !service_port(src_port) || service_port(dst_port)
}

pub struct FlowState {
    pub serial: u32,
    /// Which packet (pushed into the engine, counting from 1) opened the flow: unique per
    /// flow and increasing, across the shards of a sharded replay too.
    pub opened_at: u64,
    pub id: String,
    pub proto: u8,
    pub client: (IpAddr, u16),
    pub server: (IpAddr, u16),
    pub first_seen: u64,
    pub last_seen: u64,
    pub traffic: Traffic,
    pub flags_out: u8,
    pub flags_in: u8,
    pub icmp: Option<(u8, u8)>,
    pub syn_ts: Option<u64>,
    pub synack_ts: Option<u64>,
    /// Half-streams, index 0 = client → server.
    pub tcp: Option<Box<[HalfStream; 2]>>,
    pub conn: Option<Connection>,
    pub fin: [bool; 2],
    pub rst: bool,
    /// The L7 connection has been finished (FIN/RST processed).
    pub l7_done: bool,
    pub interface: u32,
}

impl FlowState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        serial: u32,
        proto: u8,
        client: (IpAddr, u16),
        server: (IpAddr, u16),
        ts: u64,
        tcp_limits: Option<TcpLimits>,
        conn: Option<Connection>,
        interface: u32,
    ) -> Self {
        let id = flow_id(proto, client, server, ts);
        FlowState {
            serial,
            opened_at: 0,
            conn: conn.map(|c| c.with_flow_id(id.clone())),
            id,
            proto,
            client,
            server,
            first_seen: ts,
            last_seen: ts,
            traffic: Traffic::default(),
            flags_out: 0,
            flags_in: 0,
            icmp: None,
            syn_ts: None,
            synack_ts: None,
            tcp: tcp_limits.map(|l| Box::new([HalfStream::new(l), HalfStream::new(l)])),
            fin: [false; 2],
            rst: false,
            l7_done: false,
            interface,
        }
    }

    pub fn client_sock(&self) -> SocketAddr {
        SocketAddr::new(self.client.0, self.client.1)
    }

    pub fn server_sock(&self) -> SocketAddr {
        SocketAddr::new(self.server.0, self.server.1)
    }

    /// Closed by FIN in both directions or by RST.
    pub fn closed(&self) -> bool {
        self.rst || (self.fin[0] && self.fin[1])
    }

    /// The flow's final record.
    pub fn to_flow(&self, reason: FlowEndReason, node: &str) -> Flow {
        let protocol = L4Protocol::from_ip_proto(self.proto);
        let is_tcp = protocol == L4Protocol::Tcp;
        let end_reason = if self.rst {
            FlowEndReason::Rst
        } else if self.fin[0] && self.fin[1] {
            FlowEndReason::Fin
        } else {
            reason
        };
        Flow {
            time: Timestamp(self.last_seen),
            flow_id: self.id.clone(),
            event: FlowEvent::End,
            source: Endpoint::new(self.client.0, self.client.1),
            destination: Endpoint::new(self.server.0, self.server.1),
            process: None,
            destination_process: None,
            l4: L4Info {
                protocol,
                tcp_flags: is_tcp.then_some(TcpFlags(self.flags_out | self.flags_in)),
                tcp_flags_out: is_tcp.then_some(TcpFlags(self.flags_out)),
                tcp_flags_in: is_tcp.then_some(TcpFlags(self.flags_in)),
                icmp_type: self.icmp.map(|i| i.0),
                icmp_code: self.icmp.map(|i| i.1),
            },
            traffic: self.traffic,
            tcp: TcpInfo {
                // SYN → SYN/ACK as seen at the capture point.
                handshake_us: match (self.syn_ts, self.synack_ts) {
                    (Some(s), Some(a)) if a >= s => Some((a - s) / 1000),
                    _ => None,
                },
                ..Default::default()
            },
            first_seen: Timestamp(self.first_seen),
            last_seen: Timestamp(self.last_seen),
            end_reason: Some(end_reason),
            interface: Some(InterfaceRef {
                ifindex: self.interface,
                name: None,
            }),
            node: node.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = ("10.0.0.1".parse().unwrap(), 1234);
        let b = ("10.0.0.2".parse().unwrap(), 80);
        assert_eq!(flow_id(6, a, b, 1), flow_id(6, a, b, 1));
        assert_ne!(flow_id(6, a, b, 1), flow_id(6, b, a, 1));
        assert_ne!(flow_id(6, a, b, 1), flow_id(17, a, b, 1));
        assert_eq!(flow_id(6, a, b, 1).len(), 16);
        assert_eq!(FlowKey::new(6, a, b), FlowKey::new(6, b, a));
    }

    #[test]
    fn orientation_hint() {
        assert!(dst_is_server(40000, 80));
        assert!(!dst_is_server(53, 40000));
        assert!(dst_is_server(53, 53));
        assert!(dst_is_server(40000, 40001));
    }
}
