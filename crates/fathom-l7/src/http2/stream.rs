//! One HTTP/2 stream: what its header blocks and DATA said, and the exchange it becomes.

use fathom_model::l7::grpc::GrpcCall;
use fathom_model::l7::http::HttpExchange;
use fathom_model::l7::{L7Detail, L7Exchange};

use super::grpc::{percent_decode, split_path, status_name, MessageCounter};
use crate::wire::{build, lossy, Half};

/// Longest header value kept.
const MAX_VALUE: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct Side {
    /// Time of the first frame that carries the message (HEADERS, DATA, RST_STREAM), and all
    /// frame bytes on the stream in this direction.
    pub ts: Option<u64>,
    pub bytes: u64,
    pub ended: bool,
    pub grpc: MessageCounter,
    /// Header blocks received (the first is the head, later ones are trailers).
    pub blocks: u32,
    /// A header block of this side could not be decoded (in part or whole).
    pub undecodable: bool,
}

impl Side {
    pub(crate) fn half(&self) -> Option<Half> {
        self.ts.map(|ts| Half::new(ts, self.bytes))
    }
}

#[derive(Debug, Default)]
pub(crate) struct Stream {
    pub id: u32,
    pub client: Side,
    pub server: Side,
    pub method: Option<String>,
    pub path: Option<String>,
    pub authority: Option<String>,
    pub host: Option<String>,
    pub req_content_type: Option<String>,
    pub req_content_length: Option<u64>,
    pub user_agent: Option<String>,
    pub status: Option<u16>,
    pub resp_content_type: Option<String>,
    pub resp_content_length: Option<u64>,
    pub grpc_status: Option<u32>,
    pub grpc_message: Option<String>,
    /// RST_STREAM or GOAWAY error code name that cut the stream short.
    pub reset: Option<&'static str>,
    /// The request was seen by another parser (h2c upgrade: HTTP/1.1 carried it).
    pub upgraded: Option<(u64, HttpExchange)>,
}

impl Stream {
    pub(crate) fn new(id: u32) -> Self {
        Stream {
            id,
            ..Stream::default()
        }
    }

    /// A header field from the client (`trailer`: not the first block).
    pub(crate) fn client_field(&mut self, name: &[u8], value: &[u8]) {
        let v = || lossy(value, MAX_VALUE);
        match name {
            b":method" => self.method = Some(v()),
            b":path" => self.path = Some(v()),
            b":authority" => self.authority = Some(v()),
            b"host" => self.host = Some(v()),
            b"content-type" => self.req_content_type = Some(v()),
            b"content-length" => {
                self.req_content_length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
            }
            b"user-agent" => self.user_agent = Some(v()),
            _ => {}
        }
    }

    /// A header field from the server; `informational` 1xx heads are skipped by the caller.
    pub(crate) fn server_field(&mut self, name: &[u8], value: &[u8]) {
        let v = || lossy(value, MAX_VALUE);
        match name {
            b":status" => {
                self.status = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok())
            }
            b"content-type" => self.resp_content_type = Some(v()),
            b"content-length" => {
                self.resp_content_length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
            }
            b"grpc-status" => {
                self.grpc_status = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
            }
            b"grpc-message" => {
                self.grpc_message = Some(lossy(percent_decode(value).as_bytes(), MAX_VALUE))
            }
            _ => {}
        }
    }

    pub(crate) fn is_grpc(&self) -> bool {
        let grpc = |ct: &Option<String>| {
            ct.as_deref()
                .is_some_and(|c| c.starts_with("application/grpc"))
        };
        grpc(&self.req_content_type) || grpc(&self.resp_content_type)
    }

    /// Both sides are done, or the stream was reset.
    pub(crate) fn complete(&self) -> bool {
        (self.client.ended && self.server.ended) || self.reset.is_some()
    }

    pub(crate) fn into_exchange(self) -> L7Exchange {
        let resp = self.server.half();
        let (req, mut http) = match &self.upgraded {
            Some((ts, h)) => (Some(Half::new(*ts, 0)), h.clone()),
            None => {
                // Without the request's HEADERS the request was not seen (mid-stream pickup).
                let req = if self.client.blocks > 0 {
                    self.client.half()
                } else {
                    None
                };
                (req, HttpExchange::default())
            }
        };
        let authority = self.authority.clone().or_else(|| self.host.clone());
        let reset_error = self.reset.is_some_and(|r| r != "NO_ERROR" && r != "CANCEL");
        if self.is_grpc() {
            let (service, method) = self.path.as_deref().map(split_path).unwrap_or((None, None));
            let call = GrpcCall {
                service,
                method,
                authority,
                stream_id: Some(self.id),
                http_status: self.status,
                grpc_status: self.grpc_status,
                grpc_message: self.grpc_message.clone(),
                request_messages: self.client.grpc.messages,
                response_messages: self.server.grpc.messages,
                request_message_bytes: self.client.grpc.message_bytes,
                response_message_bytes: self.server.grpc.message_bytes,
            };
            let status = match (self.grpc_status, self.reset) {
                (Some(code), _) => {
                    Some(status_name(code).map_or_else(|| code.to_string(), str::to_string))
                }
                (None, Some(r)) => Some(r.to_string()),
                (None, None) => self.status.map(|s| s.to_string()),
            };
            let error = match self.grpc_status {
                Some(code) => code != 0,
                None => reset_error || self.status.is_some_and(crate::http1::status_is_error),
            };
            return build(req, resp, false, status, error, L7Detail::Grpc(call));
        }
        if self.upgraded.is_none() {
            http.method = self.method.clone();
            http.path = self.path.clone();
            http.host = authority;
            http.request_content_type = self.req_content_type.clone();
            http.request_content_length = self.req_content_length;
            http.user_agent = self.user_agent.clone();
        }
        http.version = Some("HTTP/2".to_string());
        http.status = self.status;
        // HTTP/2 has no reason phrase; a stream cut short says why here.
        http.reason = self.reset.map(str::to_string);
        http.response_content_type = self.resp_content_type.clone();
        http.response_content_length = self.resp_content_length;
        http.stream_id = Some(self.id);
        let status = self
            .status
            .map(|s| s.to_string())
            .or_else(|| self.reset.map(str::to_string));
        let error = self.status.is_some_and(crate::http1::status_is_error) || reset_error;
        build(req, resp, false, status, error, L7Detail::Http2(http))
    }
}

/// RST_STREAM / GOAWAY error code names (RFC 9113 §7).
pub(crate) fn error_name(code: u32) -> &'static str {
    match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => "UNKNOWN_ERROR",
    }
}
