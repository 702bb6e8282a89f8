//! Connection-phase packets: the server greeting, the client's handshake response (or
//! SSLRequest), and COM_CHANGE_USER.

use super::packet::lenenc_bytes;
use crate::wire::{lossy, Cursor};

pub(crate) const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
pub(crate) const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
pub(crate) const CLIENT_SSL: u32 = 0x0000_0800;
pub(crate) const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
pub(crate) const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;
pub(crate) const CLIENT_PLUGIN_AUTH_LENENC: u32 = 0x0020_0000;
pub(crate) const CLIENT_DEPRECATE_EOF: u32 = 0x0100_0000;
pub(crate) const CLIENT_QUERY_ATTRIBUTES: u32 = 0x0800_0000;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Greeting {
    pub version: String,
    pub caps: u32,
    pub plugin: Option<String>,
}

/// Protocol 10 greeting (9 is older still and has nothing after the version we use).
pub(crate) fn greeting(p: &[u8]) -> Option<Greeting> {
    let mut c = Cursor::new(p);
    let proto = c.u8()?;
    if proto != 10 && proto != 9 {
        return None;
    }
    let version = c.cstr()?;
    if version.is_empty() || !version.iter().all(|b| (0x20..0x7f).contains(b)) {
        return None;
    }
    let mut g = Greeting {
        version: lossy(version, 64),
        ..Greeting::default()
    };
    // thread id, auth data part 1, filler
    if c.skip(4 + 8 + 1).is_none() {
        return Some(g);
    }
    let lower = c.le_u16().unwrap_or(0) as u32;
    g.caps = lower;
    if c.skip(1 + 2).is_none() {
        return Some(g);
    }
    let upper = c.le_u16().unwrap_or(0) as u32;
    g.caps |= upper << 16;
    let auth_len = c.u8().unwrap_or(0) as usize;
    if c.skip(10).is_some() && g.caps & CLIENT_SECURE_CONNECTION != 0 {
        let part2 = auth_len.saturating_sub(8).max(13);
        if c.skip(part2).is_some() && g.caps & CLIENT_PLUGIN_AUTH != 0 {
            g.plugin = Some(lossy(c.cstr().unwrap_or(c.rest()), 64));
        }
    }
    Some(g)
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub caps: u32,
    /// An SSLRequest: TLS starts after it.
    pub ssl: bool,
    pub user: Option<String>,
    pub database: Option<String>,
    pub plugin: Option<String>,
}

pub(crate) fn response(p: &[u8]) -> Option<Response> {
    let mut c = Cursor::new(p);
    let lower = c.le_u16()? as u32;
    let mut r = Response::default();
    if lower & CLIENT_PROTOCOL_41 != 0 {
        let upper = c.le_u16()? as u32;
        r.caps = lower | upper << 16;
        c.skip(4 + 1 + 23)?;
        if c.remaining() == 0 {
            r.ssl = r.caps & CLIENT_SSL != 0;
            return Some(r);
        }
        r.user = Some(lossy(c.cstr()?, 256));
        let auth = if r.caps & CLIENT_PLUGIN_AUTH_LENENC != 0 {
            lenenc_bytes(&mut c)
        } else if r.caps & CLIENT_SECURE_CONNECTION != 0 {
            c.u8().and_then(|n| c.take(n as usize))
        } else {
            c.cstr()
        };
        if auth.is_none() {
            return Some(r);
        }
        if r.caps & CLIENT_CONNECT_WITH_DB != 0 {
            r.database = c.cstr().map(|d| lossy(d, 256));
        }
        if r.caps & CLIENT_PLUGIN_AUTH != 0 {
            r.plugin = c.cstr().map(|d| lossy(d, 64));
        }
    } else {
        // HandshakeResponse320: 2-byte caps, 3-byte max packet size.
        r.caps = lower;
        c.skip(3)?;
        if c.remaining() == 0 {
            r.ssl = r.caps & CLIENT_SSL != 0;
            return Some(r);
        }
        r.user = Some(lossy(c.cstr()?, 256));
        if r.caps & CLIENT_CONNECT_WITH_DB != 0 && c.cstr().is_some() {
            r.database = c.cstr().map(|d| lossy(d, 256));
        }
    }
    Some(r)
}

/// COM_CHANGE_USER body (after the command byte): user, auth data, database.
pub(crate) fn change_user(p: &[u8], caps: u32) -> (Option<String>, Option<String>) {
    let mut c = Cursor::new(p);
    let Some(user) = c.cstr() else {
        return (None, None);
    };
    let user = Some(lossy(user, 256));
    let auth = if caps & CLIENT_SECURE_CONNECTION != 0 || caps == 0 {
        c.u8().and_then(|n| c.take(n as usize))
    } else {
        c.cstr()
    };
    let db = auth.and_then(|_| c.cstr()).map(|d| lossy(d, 256));
    (user, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_and_response() {
        let mut g = vec![10u8];
        g.extend_from_slice(b"8.0.36\0");
        g.extend_from_slice(&[1, 0, 0, 0]);
        g.extend_from_slice(b"abcdefgh\0");
        g.extend_from_slice(&0xf7ffu16.to_le_bytes());
        g.push(0xff);
        g.extend_from_slice(&2u16.to_le_bytes());
        g.extend_from_slice(&0xdfffu16.to_le_bytes());
        g.push(21);
        g.extend_from_slice(&[0; 10]);
        g.extend_from_slice(b"ijklmnopqrst\0");
        g.extend_from_slice(b"caching_sha2_password\0");
        let gr = greeting(&g).unwrap();
        assert_eq!(gr.version, "8.0.36");
        assert_eq!(gr.plugin.as_deref(), Some("caching_sha2_password"));
        assert!(gr.caps & CLIENT_DEPRECATE_EOF != 0);

        let caps = CLIENT_PROTOCOL_41
            | CLIENT_SECURE_CONNECTION
            | CLIENT_CONNECT_WITH_DB
            | CLIENT_PLUGIN_AUTH;
        let mut r = caps.to_le_bytes().to_vec();
        r.extend_from_slice(&[0, 0, 0, 1, 33]);
        r.extend_from_slice(&[0; 23]);
        r.extend_from_slice(b"root\0");
        r.push(2);
        r.extend_from_slice(b"xy");
        r.extend_from_slice(b"shop\0mysql_native_password\0");
        let resp = response(&r).unwrap();
        assert_eq!(resp.user.as_deref(), Some("root"));
        assert_eq!(resp.database.as_deref(), Some("shop"));
        assert_eq!(resp.plugin.as_deref(), Some("mysql_native_password"));
        assert!(!resp.ssl);
    }
}
