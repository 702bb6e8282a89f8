//! Decoding the fields of the PostgreSQL messages the parser reports on.

use crate::wire::{lossy, Cursor};

/// Startup parameters of interest.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Startup {
    pub user: Option<String>,
    pub database: Option<String>,
    pub application_name: Option<String>,
}

/// StartupMessage body after the protocol version: NUL-terminated key/value pairs.
pub(crate) fn startup(body: &[u8], max: usize) -> Startup {
    let mut c = Cursor::new(body);
    let mut s = Startup::default();
    while let Some(key) = c.cstr() {
        if key.is_empty() {
            break;
        }
        let Some(value) = c.cstr() else { break };
        let value = Some(lossy(value, max));
        match key {
            b"user" => s.user = value,
            b"database" => s.database = value,
            b"application_name" => s.application_name = value,
            _ => {}
        }
    }
    // The database defaults to the user name.
    if s.database.is_none() {
        s.database = s.user.clone();
    }
    s
}

/// ErrorResponse / NoticeResponse: typed fields until a zero byte.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ErrorFields {
    /// Non-localised severity (`V`), or the localised one (`S`) from older servers.
    pub severity: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
}

pub(crate) fn error_fields(body: &[u8], max: usize) -> ErrorFields {
    let mut c = Cursor::new(body);
    let mut e = ErrorFields::default();
    while let Some(t) = c.u8() {
        if t == 0 {
            break;
        }
        let Some(v) = c.cstr() else { break };
        match t {
            b'V' => e.severity = Some(lossy(v, 16)),
            b'S' if e.severity.is_none() => e.severity = Some(lossy(v, 16)),
            b'C' => e.code = Some(lossy(v, 5)),
            b'M' => e.message = Some(lossy(v, max)),
            _ => {}
        }
    }
    e
}

/// Query text of a simple Query (body is the NUL-terminated text; a cut body has no NUL).
pub(crate) fn query_text(body: &[u8], max: usize) -> String {
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    lossy(&body[..end], max)
}

/// Parse: statement name, query text.
pub(crate) fn parse_msg(body: &[u8], max: usize) -> Option<(String, String)> {
    let mut c = Cursor::new(body);
    let name = c.cstr()?;
    let rest = c.rest();
    Some((lossy(name, 256), query_text(rest, max)))
}

/// Bind: portal name, statement name.
pub(crate) fn bind_statement(body: &[u8]) -> Option<String> {
    let mut c = Cursor::new(body);
    c.cstr()?;
    Some(lossy(c.cstr()?, 256))
}

/// Authentication request code → method name (the names Zeek uses).
pub(crate) fn auth_method(code: u32) -> Option<&'static str> {
    Some(match code {
        0 => return None,
        2 => "KerberosV5",
        3 => "CleartextPassword",
        5 => "MD5Password",
        7 => "GSS",
        8 => "GSSContinue",
        9 => "SSPI",
        10 => "SASL",
        11 => "SASLContinue",
        12 => "SASLFinal",
        _ => "Unknown",
    })
}

/// Rows affected according to a CommandComplete tag ("INSERT 0 5", "UPDATE 3", "COPY 10").
pub(crate) fn affected_rows(tag: &str) -> Option<u64> {
    let mut words = tag.split_ascii_whitespace();
    let verb = words.next()?;
    if !matches!(verb, "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "COPY") {
        return None;
    }
    words.last()?.parse().ok()
}

/// NotificationResponse: process id, channel, payload.
pub(crate) fn notification_channel(body: &[u8]) -> Option<String> {
    let mut c = Cursor::new(body);
    c.be_u32()?;
    Some(lossy(c.cstr()?, 256))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let s = startup(b"user\0bob\0application_name\0psql\0\0", 64);
        assert_eq!(s.user.as_deref(), Some("bob"));
        assert_eq!(s.database.as_deref(), Some("bob"));
        assert_eq!(s.application_name.as_deref(), Some("psql"));
        let e = error_fields(b"SERROR\0VERROR\0C42P01\0Mno table\0\0", 64);
        assert_eq!(e.code.as_deref(), Some("42P01"));
        assert_eq!(e.message.as_deref(), Some("no table"));
        assert_eq!(affected_rows("INSERT 0 5"), Some(5));
        assert_eq!(affected_rows("SELECT 5"), None);
        assert_eq!(
            parse_msg(b"s1\0select 1\0\0\0", 64),
            Some(("s1".into(), "select 1".into()))
        );
    }
}
