//! DNS query/response pairs over UDP or TCP.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DnsAnswer {
    pub name: String,
    /// Record type name: "A", "AAAA", "CNAME", …
    pub rtype: String,
    pub ttl: u32,
    /// Presentation form of the record data.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DnsExchange {
    pub id: u16,
    pub qname: Option<String>,
    pub qtype: Option<String>,
    pub qclass: Option<String>,
    /// Response code name: "NOERROR", "NXDOMAIN", …
    pub rcode: Option<String>,
    pub answers: Vec<DnsAnswer>,
    /// "udp" or "tcp".
    pub transport: String,
    pub authoritative: Option<bool>,
    pub truncated: Option<bool>,
    pub recursion_desired: Option<bool>,
    pub recursion_available: Option<bool>,
}
