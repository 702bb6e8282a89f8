//! The L7 protocol engine: byte streams in, request/response records out.

pub mod parser;
