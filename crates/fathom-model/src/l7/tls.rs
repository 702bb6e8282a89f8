//! TLS handshake metadata (no decryption).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TlsHandshake {
    pub sni: Option<String>,
    pub alpn_offered: Vec<String>,
    pub alpn_selected: Option<String>,
    /// Versions the client offered (supported_versions, or the legacy version), e.g. "TLSv1.3".
    pub client_versions: Vec<String>,
    /// Version the server chose.
    pub version: Option<String>,
    /// Cipher suite the server chose, IANA name.
    pub cipher: Option<String>,
}
