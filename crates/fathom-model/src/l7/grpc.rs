//! gRPC calls carried over HTTP/2.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GrpcCall {
    /// From `:path` = `/package.Service/Method`.
    pub service: Option<String>,
    pub method: Option<String>,
    pub authority: Option<String>,
    pub stream_id: Option<u32>,
    pub http_status: Option<u16>,
    pub grpc_status: Option<u32>,
    pub grpc_message: Option<String>,
    pub request_messages: u32,
    pub response_messages: u32,
    pub request_message_bytes: u64,
    pub response_message_bytes: u64,
}
