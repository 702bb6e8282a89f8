//! PostgreSQL frontend/backend protocol messages.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PostgresMessage {
    /// "startup", "ssl_request", "auth", "query", "extended_query", "terminate", …
    pub kind: String,
    pub user: Option<String>,
    pub database: Option<String>,
    pub application_name: Option<String>,
    /// "ok" or "failed" for startup/auth.
    pub auth_outcome: Option<String>,
    /// SSL request answered 'S' (true) or 'N' (false).
    pub ssl_accepted: Option<bool>,
    pub statement: Option<String>,
    /// CommandComplete tags, e.g. "SELECT 3", "INSERT 0 1".
    pub command_tags: Vec<String>,
    /// SQLSTATE code from ErrorResponse.
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// DataRow messages returned.
    pub rows: Option<u64>,
    /// Authentication method the server asked for first ("SASL", "MD5Password", …).
    pub auth_method: Option<String>,
    /// Rows affected by INSERT/UPDATE/DELETE/MERGE/COPY, summed over the command tags.
    pub affected_rows: Option<u64>,
    /// LISTEN/NOTIFY channel of a notification message.
    pub channel: Option<String>,
}
