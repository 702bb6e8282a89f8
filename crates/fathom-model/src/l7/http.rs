//! HTTP/1.x and HTTP/2 exchanges (one request and its response; h2 carries the stream id).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HttpExchange {
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    /// "HTTP/1.0", "HTTP/1.1", "HTTP/2".
    pub version: Option<String>,
    pub status: Option<u16>,
    pub reason: Option<String>,
    pub request_content_type: Option<String>,
    pub response_content_type: Option<String>,
    pub request_content_length: Option<u64>,
    pub response_content_length: Option<u64>,
    pub user_agent: Option<String>,
    /// HTTP/2 stream id.
    pub stream_id: Option<u32>,
}
