//! Application-layer records: one request/response exchange (or a one-sided message when the
//! peer is missing) of a known protocol, with latency and sizes. Each protocol's detail lives
//! in its own file; this file holds what is common to all of them.

pub mod dns;
pub mod grpc;
pub mod http;
pub mod kafka;
pub mod mysql;
pub mod postgres;
pub mod redis;
pub mod tls;

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::flow::{Endpoint, ProcessInfo};
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum L7Protocol {
    Http,
    Http2,
    Grpc,
    Dns,
    Redis,
    Kafka,
    Postgres,
    Mysql,
    Tls,
}

impl L7Protocol {
    pub const ALL: [L7Protocol; 9] = [
        L7Protocol::Http,
        L7Protocol::Http2,
        L7Protocol::Grpc,
        L7Protocol::Dns,
        L7Protocol::Redis,
        L7Protocol::Kafka,
        L7Protocol::Postgres,
        L7Protocol::Mysql,
        L7Protocol::Tls,
    ];

    pub fn name(self) -> &'static str {
        match self {
            L7Protocol::Http => "http",
            L7Protocol::Http2 => "http2",
            L7Protocol::Grpc => "grpc",
            L7Protocol::Dns => "dns",
            L7Protocol::Redis => "redis",
            L7Protocol::Kafka => "kafka",
            L7Protocol::Postgres => "postgres",
            L7Protocol::Mysql => "mysql",
            L7Protocol::Tls => "tls",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for L7Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which halves of an exchange were seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeKind {
    RequestResponse,
    /// The response never came (connection closed, or capture ended).
    RequestOnly,
    /// The request was not seen (mid-stream pickup).
    ResponseOnly,
    /// A message that is not part of a request/response pair (e.g. a server notice, a push).
    Message,
}

/// Protocol-specific detail. Serialized flattened next to the common fields, tagged by protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum L7Detail {
    Http(http::HttpExchange),
    Http2(http::HttpExchange),
    Grpc(grpc::GrpcCall),
    Dns(dns::DnsExchange),
    Redis(redis::RedisCommand),
    Kafka(kafka::KafkaExchange),
    Postgres(postgres::PostgresMessage),
    Mysql(mysql::MysqlMessage),
    Tls(tls::TlsHandshake),
}

impl L7Detail {
    pub fn protocol(&self) -> L7Protocol {
        match self {
            L7Detail::Http(_) => L7Protocol::Http,
            L7Detail::Http2(_) => L7Protocol::Http2,
            L7Detail::Grpc(_) => L7Protocol::Grpc,
            L7Detail::Dns(_) => L7Protocol::Dns,
            L7Detail::Redis(_) => L7Protocol::Redis,
            L7Detail::Kafka(_) => L7Protocol::Kafka,
            L7Detail::Postgres(_) => L7Protocol::Postgres,
            L7Detail::Mysql(_) => L7Protocol::Mysql,
            L7Detail::Tls(_) => L7Protocol::Tls,
        }
    }
}

/// What a protocol parser produces: one exchange, without the connection's endpoints (the
/// session layer that owns the connection adds those to make an [`L7Record`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L7Exchange {
    pub kind: ExchangeKind,
    /// Time of the first byte of the request (or of the response for response-only).
    pub request_time: Option<Timestamp>,
    pub response_time: Option<Timestamp>,
    /// Response first byte minus request first byte.
    pub latency_ns: Option<u64>,
    /// Bytes on the wire for each half, protocol framing included.
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// A short protocol-neutral outcome: HTTP status, DNS rcode name, "OK"/"ERR", …
    pub status: Option<String>,
    /// Whether the protocol considers this exchange failed (HTTP ≥ 500 or ≥ 400, DNS rcode ≠ 0,
    /// Redis error reply, SQL error, gRPC status ≠ 0, Kafka error code ≠ 0).
    pub error: bool,
    #[serde(flatten)]
    pub detail: L7Detail,
}

/// An exchange on a connection, with its endpoints and, when known, the processes and flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L7Record {
    pub time: Timestamp,
    pub source: Endpoint,
    pub destination: Endpoint,
    /// The client process, when the client side is on this node.
    pub process: Option<ProcessInfo>,
    pub flow_id: Option<String>,
    /// True when the bytes came from TLS library uprobes (plaintext of an encrypted connection).
    #[serde(default)]
    pub tls_plaintext: bool,
    #[serde(flatten)]
    pub exchange: L7Exchange,
}
