//! MySQL / MariaDB client/server protocol messages.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MysqlMessage {
    /// "handshake", "COM_QUERY", "COM_STMT_PREPARE", "COM_STMT_EXECUTE", "COM_QUIT", …
    pub command: String,
    pub server_version: Option<String>,
    pub user: Option<String>,
    pub database: Option<String>,
    /// "ok" or "failed" for the handshake/auth.
    pub auth_outcome: Option<String>,
    pub statement: Option<String>,
    pub statement_id: Option<u32>,
    pub error_code: Option<u16>,
    pub sql_state: Option<String>,
    pub error_message: Option<String>,
    pub affected_rows: Option<u64>,
    /// Rows of the result set(s).
    pub rows: Option<u64>,
    /// Columns of the (first) result set.
    pub columns: Option<u64>,
    /// Authentication plugin of the handshake (after any auth switch).
    pub auth_plugin: Option<String>,
}
