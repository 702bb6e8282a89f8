//! Is a connection speaking PostgreSQL? Decided from the first bytes of one direction.
//!
//! Frontend: a startup-phase message (StartupMessage for protocol 3.x, SSLRequest,
//! GSSENCRequest, CancelRequest), whose fixed codes make it unambiguous; or, for a connection
//! picked up later, a complete simple Query message. Backend: an Authentication request or a
//! startup ErrorResponse. The backend's one-byte answer to SSLRequest is not enough on its own.

use super::frame::{plausible_untyped, CANCEL_REQUEST};
use crate::parser::{Detection, Direction};

pub fn detect(dir: Direction, data: &[u8]) -> Detection {
    match dir {
        Direction::ClientToServer => detect_frontend(data),
        Direction::ServerToClient => detect_backend(data),
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn detect_frontend(data: &[u8]) -> Detection {
    if data.len() < 8 {
        // Startup lengths are small: the first two bytes are zero. A Query starts with 'Q'.
        return match data {
            [] => Detection::NeedMore,
            [0, ..] if data.len() < 2 || data[1] == 0 => Detection::NeedMore,
            [b'Q', ..] => Detection::NeedMore,
            _ => Detection::NoMatch,
        };
    }
    let (len, code) = (be32(data), be32(&data[4..]));
    if plausible_untyped(len, code) {
        if code == CANCEL_REQUEST && len != 16 {
            return Detection::NoMatch;
        }
        return Detection::Match;
    }
    if data[0] == b'Q' {
        let len = be32(&data[1..]) as usize;
        if !(6..=1 << 20).contains(&len) {
            return Detection::NoMatch;
        }
        let Some(msg) = data.get(5..len + 1) else {
            return if data.len() < 4096 {
                Detection::NeedMore
            } else {
                Detection::NoMatch
            };
        };
        let (text, nul) = msg.split_at(msg.len() - 1);
        let printable = text.iter().all(|&b| b >= 0x20 || b"\t\r\n".contains(&b));
        return if nul == [0] && printable && !text.is_empty() {
            Detection::Match
        } else {
            Detection::NoMatch
        };
    }
    Detection::NoMatch
}

fn detect_backend(data: &[u8]) -> Detection {
    match data.first() {
        None => return Detection::NeedMore,
        Some(b'R') | Some(b'E') => {}
        Some(_) => return Detection::NoMatch,
    }
    if data.len() < 9 {
        return Detection::NeedMore;
    }
    let len = be32(&data[1..]);
    if data[0] == b'R' {
        let code = be32(&data[5..]);
        let ok_len = match code {
            0 | 2 | 3 | 7 | 9 => len == 8,
            5 => len == 12,
            10 => len > 8 && len < 1024,
            _ => false,
        };
        return if ok_len {
            Detection::Match
        } else {
            Detection::NoMatch
        };
    }
    // ErrorResponse: fields start with a severity ('S') and the length is modest.
    if (8..=8192).contains(&len) && data[5] == b'S' {
        let sev = &data[6..];
        for s in [&b"FATAL\0"[..], b"ERROR\0", b"PANIC\0"] {
            let n = sev.len().min(s.len());
            if sev[..n] == s[..n] {
                return if n == s.len() {
                    Detection::Match
                } else {
                    Detection::NeedMore
                };
            }
        }
    }
    Detection::NoMatch
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::*;

    #[test]
    fn frontend() {
        assert_eq!(
            detect(ClientToServer, &[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]),
            Detection::Match
        );
        assert_eq!(detect(ClientToServer, &[0, 0, 0]), Detection::NeedMore);
        let mut startup = vec![0, 0, 0, 0x15, 0, 3, 0, 0];
        startup.extend_from_slice(b"user\0bob\0\0\0\0\0");
        assert_eq!(detect(ClientToServer, &startup), Detection::Match);
        assert_eq!(
            detect(ClientToServer, b"Q\0\0\0\x0dselect 1\0"),
            Detection::Match
        );
        assert_eq!(
            detect(ClientToServer, b"GET / HTTP/1.1\r\n"),
            Detection::NoMatch
        );
    }

    #[test]
    fn backend() {
        assert_eq!(
            detect(ServerToClient, b"R\0\0\0\x08\0\0\0\0"),
            Detection::Match
        );
        assert_eq!(detect(ServerToClient, b"R\0\0"), Detection::NeedMore);
        assert_eq!(
            detect(ServerToClient, b"E\0\0\0\x50SFATAL\0"),
            Detection::Match
        );
        assert_eq!(detect(ServerToClient, b"N"), Detection::NoMatch);
    }
}
