//! The question asked of the evaluator and of the compiled maps: one packet (the first packet
//! of a connection; replies are the conntrack's business).

use std::net::IpAddr;

use serde::Serialize;

use crate::endpoint::EndpointId;
use crate::policy::{IcmpFamily, PortProtocol};

/// One side of a packet: a known endpoint, or an address (resolved through the inventory the
/// way the kernel resolves it through the ipcache).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Peer {
    Endpoint(EndpointId),
    Ip(IpAddr),
}

/// The transport part of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum L4 {
    Tcp {
        dport: u16,
    },
    Udp {
        dport: u16,
    },
    Sctp {
        dport: u16,
    },
    Icmp {
        icmp_type: u8,
        code: u8,
    },
    Icmpv6 {
        icmp_type: u8,
        code: u8,
    },
    /// Any other IP protocol, by number. Numbers of the variants above are normalized to them
    /// (with port or type/code 0) so that one packet has one meaning.
    Other(u8),
}

impl L4 {
    /// The same packet with `Other(6)` etc. turned into the dedicated variant.
    pub fn normalized(self) -> Self {
        match self {
            L4::Other(6) => L4::Tcp { dport: 0 },
            L4::Other(17) => L4::Udp { dport: 0 },
            L4::Other(132) => L4::Sctp { dport: 0 },
            L4::Other(1) => L4::Icmp {
                icmp_type: 0,
                code: 0,
            },
            L4::Other(58) => L4::Icmpv6 {
                icmp_type: 0,
                code: 0,
            },
            other => other,
        }
    }

    /// IANA protocol number.
    pub fn protocol(self) -> u8 {
        match self.normalized() {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Sctp { .. } => 132,
            L4::Icmp { .. } => 1,
            L4::Icmpv6 { .. } => 58,
            L4::Other(p) => p,
        }
    }

    /// Destination port for the port-bearing protocols.
    pub fn port(self) -> Option<(PortProtocol, u16)> {
        match self.normalized() {
            L4::Tcp { dport } => Some((PortProtocol::Tcp, dport)),
            L4::Udp { dport } => Some((PortProtocol::Udp, dport)),
            L4::Sctp { dport } => Some((PortProtocol::Sctp, dport)),
            _ => None,
        }
    }

    /// ICMP family, type and code.
    pub fn icmp(self) -> Option<(IcmpFamily, u8, u8)> {
        match self.normalized() {
            L4::Icmp { icmp_type, code } => Some((IcmpFamily::V4, icmp_type, code)),
            L4::Icmpv6 { icmp_type, code } => Some((IcmpFamily::V6, icmp_type, code)),
            _ => None,
        }
    }

    /// The 16 bits that follow the protocol in a policy map key: the destination port, or ICMP
    /// type in the high byte and code in the low byte, or 0.
    pub fn key_bits(self) -> u16 {
        match self.normalized() {
            L4::Tcp { dport } | L4::Udp { dport } | L4::Sctp { dport } => dport,
            L4::Icmp { icmp_type, code } | L4::Icmpv6 { icmp_type, code } => {
                u16::from(icmp_type) << 8 | u16::from(code)
            }
            L4::Other(_) => 0,
        }
    }
}

/// A packet from `src` to `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Packet {
    pub src: Peer,
    pub dst: Peer,
    pub l4: L4,
}

impl Packet {
    pub fn new(src: Peer, dst: Peer, l4: L4) -> Self {
        Self { src, dst, l4 }
    }

    pub fn tcp(src: Peer, dst: Peer, dport: u16) -> Self {
        Self::new(src, dst, L4::Tcp { dport })
    }

    pub fn udp(src: Peer, dst: Peer, dport: u16) -> Self {
        Self::new(src, dst, L4::Udp { dport })
    }
}
