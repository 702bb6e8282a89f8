//! PostgreSQL message framing for both directions.
//!
//! A frontend starts with untyped messages (`length, code`: StartupMessage, SSLRequest,
//! GSSENCRequest, CancelRequest); everything else is `type, length, body` where the length
//! counts itself but not the type byte. The backend answers an SSLRequest/GSSENCRequest with a
//! single unframed byte.

use crate::wire::StreamBuf;

pub(crate) const SSL_REQUEST: u32 = 80_877_103;
pub(crate) const GSSENC_REQUEST: u32 = 80_877_104;
pub(crate) const CANCEL_REQUEST: u32 = 80_877_102;

/// Frontend message types after startup.
const FRONTEND_TYPES: &[u8] = b"QPBEDCSHXpdcfF";
/// Backend message types.
const BACKEND_TYPES: &[u8] = b"RSKZENTDCI123ntsAGHWdcVv";

/// Largest length field accepted (PostgreSQL's own limit on a message is 1 GB).
const MAX_LEN: u32 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Untyped startup-phase message with its code (protocol version or request code).
    Untyped(u32),
    Typed(u8),
}

/// A message ready to be handled: its kind, total wire size, the time of its first byte, and
/// its body (possibly cut to the configured maximum).
#[derive(Debug)]
pub(crate) struct Frame {
    pub kind: Kind,
    pub total: u64,
    pub ts: u64,
    pub body: Vec<u8>,
    pub truncated: bool,
}

pub(crate) enum Next {
    Frame(Frame),
    /// Need more bytes.
    Wait,
    /// The bytes at the front do not start a valid message: skip one and look again.
    Garbage,
}

/// Is `t` a message type of this direction?
pub(crate) fn is_type(backend: bool, t: u8) -> bool {
    if backend {
        BACKEND_TYPES.contains(&t)
    } else {
        FRONTEND_TYPES.contains(&t)
    }
}

/// Does a typed header make sense? Fixed-size messages must have their exact size.
pub(crate) fn plausible_typed(backend: bool, ty: u8, len: u32) -> bool {
    let types = if backend {
        BACKEND_TYPES
    } else {
        FRONTEND_TYPES
    };
    if !types.contains(&ty) || !(4..MAX_LEN).contains(&len) {
        return false;
    }
    let fixed = if backend {
        match ty {
            b'Z' => Some(5),
            b'1' | b'2' | b'3' | b'n' | b'I' | b'c' | b's' => Some(4),
            _ => None,
        }
    } else {
        match ty {
            b'S' | b'H' | b'c' | b'X' => Some(4),
            _ => None,
        }
    };
    let min = match (backend, ty) {
        (true, b'R') => 8,
        // 12 in protocol 3.0; 3.2 allows longer cancel keys.
        (true, b'K') => 12,
        (true, b'S') | (true, b'E') | (true, b'N') | (true, b'C') => 5,
        (true, b'T') | (true, b'D') => 6,
        (false, b'Q') | (false, b'E') | (false, b'D') | (false, b'C') => 5,
        (false, b'P') | (false, b'B') => 8,
        _ => 4,
    };
    fixed.is_none_or(|f| f == len) && len >= min
}

/// Is this an untyped startup-phase message header?
pub(crate) fn plausible_untyped(len: u32, code: u32) -> bool {
    match code {
        SSL_REQUEST | GSSENC_REQUEST => len == 8,
        CANCEL_REQUEST => len == 16 || (12..=264).contains(&len),
        // Protocol 3.x (3.0 today, 3.2 with newer clients); the body is key/value pairs.
        c if c >> 16 == 3 && (c & 0xffff) <= 2 => (9..=10_000).contains(&len),
        _ => false,
    }
}

/// Reads the next message from `buf` without consuming it. `untyped` selects the startup-phase
/// framing. Messages longer than `max` are handed over cut to `max` bytes once that many are
/// buffered; the caller consumes `total` with [`StreamBuf::skip_message`].
pub(crate) fn next(buf: &StreamBuf, backend: bool, untyped: bool, max: usize) -> Next {
    let data = buf.data();
    let (kind, total, header) = if untyped {
        if data.len() < 8 {
            return Next::Wait;
        }
        let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
        let code = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        if !plausible_untyped(len, code) {
            return Next::Garbage;
        }
        (Kind::Untyped(code), len as u64, 8usize)
    } else {
        if data.len() < 5 {
            return Next::Wait;
        }
        let ty = data[0];
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]);
        if !plausible_typed(backend, ty, len) {
            return Next::Garbage;
        }
        (Kind::Typed(ty), len as u64 + 1, 5usize)
    };
    let keep = total.min(max.max(header) as u64) as usize;
    if data.len() < keep {
        return Next::Wait;
    }
    Next::Frame(Frame {
        kind,
        total,
        ts: buf.ts(),
        body: data[header..keep].to_vec(),
        truncated: (keep as u64) < total,
    })
}
