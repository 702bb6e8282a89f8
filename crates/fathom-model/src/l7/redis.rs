//! Redis (RESP2/RESP3) commands and their replies.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RedisCommand {
    /// Upper-cased command name; subcommand appended for container commands ("CLIENT SETNAME").
    pub command: Option<String>,
    pub key: Option<String>,
    pub args: u32,
    /// RESP reply type: "simple_string", "error", "integer", "bulk_string", "array", "null", "map", …
    pub reply_type: Option<String>,
    pub error: Option<String>,
    pub resp_version: Option<u8>,
}
