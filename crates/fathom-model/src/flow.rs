//! A flow is one L3/L4 conversation (canonical 5-tuple) as the node saw it: who started it,
//! which processes and pods are behind each side, and what crossed in each direction.
//! `docs/flow-schema.md` documents the JSON; keep the two in step.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::time::Timestamp;

/// One side of a flow. `source` is always the side that opened the conversation (the client),
/// as decided by the kernel from the first packet (SYN, echo request, first datagram).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
    pub pod: Option<String>,
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Endpoint {
    pub fn new(ip: IpAddr, port: u16) -> Self {
        Endpoint {
            ip,
            port,
            pod: None,
            namespace: None,
            labels: BTreeMap::new(),
        }
    }

    /// `namespace/pod` when the endpoint is a known pod.
    pub fn pod_name(&self) -> Option<String> {
        match (&self.namespace, &self.pod) {
            (Some(ns), Some(p)) => Some(format!("{ns}/{p}")),
            (None, Some(p)) => Some(p.clone()),
            _ => None,
        }
    }
}

/// The process behind one side of a flow, when that side is a socket on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProcessInfo {
    pub pid: u32,
    pub tid: Option<u32>,
    pub ppid: Option<u32>,
    pub comm: String,
    pub exe: Option<String>,
    pub cgroup_id: Option<u64>,
    pub container_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L4Protocol {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    Sctp,
    Other(u8),
}

impl L4Protocol {
    pub fn from_ip_proto(p: u8) -> Self {
        match p {
            6 => L4Protocol::Tcp,
            17 => L4Protocol::Udp,
            1 => L4Protocol::Icmp,
            58 => L4Protocol::Icmpv6,
            132 => L4Protocol::Sctp,
            other => L4Protocol::Other(other),
        }
    }

    pub fn ip_proto(self) -> u8 {
        match self {
            L4Protocol::Tcp => 6,
            L4Protocol::Udp => 17,
            L4Protocol::Icmp => 1,
            L4Protocol::Icmpv6 => 58,
            L4Protocol::Sctp => 132,
            L4Protocol::Other(p) => p,
        }
    }

    pub fn name(self) -> String {
        match self {
            L4Protocol::Tcp => "tcp".into(),
            L4Protocol::Udp => "udp".into(),
            L4Protocol::Icmp => "icmp".into(),
            L4Protocol::Icmpv6 => "icmpv6".into(),
            L4Protocol::Sctp => "sctp".into(),
            L4Protocol::Other(p) => format!("ip-proto-{p}"),
        }
    }
}

impl fmt::Display for L4Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// TCP flags as the bits of the TCP header's flag byte (FIN=0x01 … CWR=0x80).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
    const NAMES: [(u8, &'static str); 8] = [
        (Self::SYN, "SYN"),
        (Self::ACK, "ACK"),
        (Self::PSH, "PSH"),
        (Self::FIN, "FIN"),
        (Self::RST, "RST"),
        (Self::URG, "URG"),
        (Self::ECE, "ECE"),
        (Self::CWR, "CWR"),
    ];

    pub fn contains(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(b, _)| self.0 & b != 0)
            .map(|(_, n)| *n)
            .collect()
    }

    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut bits = 0;
        for n in names {
            let up = n.to_ascii_uppercase();
            let bit = Self::NAMES
                .iter()
                .find(|(_, name)| *name == up)
                .map(|(b, _)| *b)
                .ok_or_else(|| format!("unknown TCP flag {n:?}"))?;
            bits |= bit;
        }
        Ok(TcpFlags(bits))
    }
}

impl Serialize for TcpFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl<'de> Deserialize<'de> for TcpFlags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        TcpFlags::from_names(names.iter().map(String::as_str)).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct L4Info {
    pub protocol: L4Protocol,
    /// Union of the flags seen in both directions.
    pub tcp_flags: Option<TcpFlags>,
    pub tcp_flags_out: Option<TcpFlags>,
    pub tcp_flags_in: Option<TcpFlags>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
}

/// Counters per direction. `out` is source → destination (the initiator's direction).
/// `bytes_*` count whole IP packets (IP header included); `payload_bytes_*` count L4 payload,
/// which is what applications log (nginx's `$request_length`/`$bytes_sent`, curl's sizes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Traffic {
    pub packets_out: u64,
    pub packets_in: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub payload_bytes_out: u64,
    pub payload_bytes_in: u64,
}

/// What the TCP stack itself reports for the connection (socket tracepoints), from the side of
/// the local socket that opened it or, for inbound connections, the local listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TcpInfo {
    /// SYN sent → ESTABLISHED on the client socket.
    pub handshake_us: Option<u64>,
    pub srtt_us: Option<u32>,
    pub retransmits: Option<u32>,
    /// Payload bytes the peer acknowledged / the socket received, read at close.
    pub bytes_acked: Option<u64>,
    pub bytes_received: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowEvent {
    /// The first packet of a new flow.
    Start,
    /// A periodic snapshot of a long-lived flow.
    Update,
    /// The flow is over; counters are final.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowEndReason {
    /// FIN seen in both directions.
    Fin,
    Rst,
    /// No packet for the idle timeout.
    Idle,
    /// The kernel's flow table evicted the entry to make room.
    Evicted,
    /// The agent stopped while the flow was alive.
    Shutdown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceRef {
    pub ifindex: u32,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// When this record was produced.
    pub time: Timestamp,
    /// Stable for the life of the flow: the same id on its start, update and end records.
    pub flow_id: String,
    pub event: FlowEvent,
    pub source: Endpoint,
    pub destination: Endpoint,
    /// The process behind `source`, when the source socket is on this node.
    pub process: Option<ProcessInfo>,
    /// The process behind `destination`, when the destination socket is on this node.
    pub destination_process: Option<ProcessInfo>,
    pub l4: L4Info,
    pub traffic: Traffic,
    pub tcp: TcpInfo,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub end_reason: Option<FlowEndReason>,
    /// Where the first packet was observed.
    pub interface: Option<InterfaceRef>,
    pub node: String,
}
