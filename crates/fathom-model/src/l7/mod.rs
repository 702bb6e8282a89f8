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

/// Protocol-specific detail, serialized under the protocol's name (`"http": {…}`, `"dns": {…}`)
/// next to the common fields. Nested rather than merged so that a protocol's own `status`,
/// `kind` or `error` can never collide with the exchange's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(detail: L7Detail) -> L7Record {
        L7Record {
            time: Timestamp(5),
            source: Endpoint::new("10.0.0.1".parse().unwrap(), 40000),
            destination: Endpoint::new("10.0.0.2".parse().unwrap(), 80),
            process: None,
            flow_id: Some("f".into()),
            tls_plaintext: false,
            exchange: L7Exchange {
                kind: ExchangeKind::RequestResponse,
                request_time: Some(Timestamp(1)),
                response_time: Some(Timestamp(3)),
                latency_ns: Some(2),
                request_bytes: 10,
                response_bytes: 20,
                status: Some("200".into()),
                error: false,
                detail,
            },
        }
    }

    /// Every protocol's record survives JSON and back: the store and the API both parse what
    /// they serialized, so a field name shared by a detail and the exchange would lose records.
    #[test]
    fn every_protocol_round_trips_through_json() {
        let details = vec![
            L7Detail::Http(http::HttpExchange {
                method: Some("GET".into()),
                status: Some(200),
                ..Default::default()
            }),
            L7Detail::Http2(http::HttpExchange {
                stream_id: Some(1),
                status: Some(404),
                ..Default::default()
            }),
            L7Detail::Grpc(grpc::GrpcCall {
                service: Some("a.B".into()),
                grpc_status: Some(5),
                ..Default::default()
            }),
            L7Detail::Dns(dns::DnsExchange {
                id: 7,
                rcode: Some("NXDOMAIN".into()),
                transport: "udp".into(),
                ..Default::default()
            }),
            L7Detail::Redis(redis::RedisCommand {
                command: Some("GET".into()),
                error: Some("ERR x".into()),
                ..Default::default()
            }),
            L7Detail::Kafka(kafka::KafkaExchange {
                api_key: 3,
                correlation_id: 9,
                ..Default::default()
            }),
            L7Detail::Postgres(postgres::PostgresMessage {
                kind: "query".into(),
                statement: Some("select 1".into()),
                ..Default::default()
            }),
            L7Detail::Mysql(mysql::MysqlMessage {
                command: "COM_QUERY".into(),
                error_code: Some(1146),
                ..Default::default()
            }),
            L7Detail::Tls(tls::TlsHandshake {
                sni: Some("example.org".into()),
                ..Default::default()
            }),
        ];
        assert_eq!(details.len(), L7Protocol::ALL.len());
        for d in details {
            let name = d.protocol().name();
            let r = crate::Record::from(record(d));
            let json = serde_json::to_value(&r).unwrap();
            assert!(
                json.get(name).is_some_and(|v| v.is_object()),
                "{name}: {json}"
            );
            let back: crate::Record = serde_json::from_value(json.clone())
                .unwrap_or_else(|e| panic!("{name}: {e}: {json}"));
            assert_eq!(back, r);
        }
    }
}
