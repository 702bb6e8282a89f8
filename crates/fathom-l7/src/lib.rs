//! The L7 protocol engine: byte streams in, request/response records out.
//!
//! Layers, bottom up:
//! - [`capture`]: pcap/pcapng reading, link-layer and IP/TCP/UDP decoding, IP fragment and TCP
//!   stream reassembly. Only used for replaying captures; live capture feeds [`session`] directly.
//! - [`infer`]: which protocol a connection speaks, from its first bytes (ports only reorder).
//! - [`session`]: per-connection buffering, inference, driving the chosen [`parser::ProtocolParser`]
//!   and turning exchanges into records with endpoints.
//! - protocol parsers: [`http1`], [`dns`], [`tls`] here; HTTP/2 + gRPC, Redis, Kafka, PostgreSQL
//!   and MySQL in their own modules.
//! - [`replay`]: a capture file in, flows and L7 records out.

pub mod capture;
pub mod dns;
pub mod http1;
pub mod http2;
pub mod infer;
pub mod kafka;
pub mod live;
pub mod mysql;
pub mod parser;
pub mod postgres;
pub mod redis;
pub mod replay;
pub mod session;
pub mod tls;
pub(crate) mod wire;
