//! Is a connection speaking Redis? Decided from the first bytes of one direction.
//!
//! Clients: a RESP array of bulk strings (`*N\r\n$M\r\n`), or an inline command from a short
//! list of commands that no other line protocol starts with (not QUIT, not HTTP's `GET /`).
//! Servers: the replies a first command typically gets (`+OK`, `+PONG`, Redis error codes,
//! bulk strings, integers, aggregates of RESP values such as RESP3 maps from HELLO or
//! attribute-prefixed replies).

use crate::parser::{Detection, Direction};

const INLINE: &[&str] = &[
    "PING",
    "ECHO",
    "HELLO",
    "AUTH",
    "GET",
    "SET",
    "INFO",
    "SELECT",
    "KEYS",
    "DEL",
    "EXISTS",
    "INCR",
    "DBSIZE",
    "FLUSHALL",
    "FLUSHDB",
    "MONITOR",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "PUBLISH",
    "COMMAND",
    "CLIENT",
    "CONFIG",
    "MULTI",
];

const ERROR_CODES: &[&str] = &[
    "ERR",
    "WRONGTYPE",
    "NOAUTH",
    "WRONGPASS",
    "NOPERM",
    "MOVED",
    "ASK",
    "LOADING",
    "READONLY",
    "BUSY",
    "NOSCRIPT",
    "OOM",
    "EXECABORT",
    "NOPROTO",
    "CLUSTERDOWN",
    "MASTERDOWN",
    "MISCONF",
];

pub fn detect(dir: Direction, data: &[u8]) -> Detection {
    if data.is_empty() {
        return Detection::NeedMore;
    }
    match dir {
        Direction::ClientToServer => detect_client(data),
        Direction::ServerToClient => detect_server(data),
    }
}

/// Matches `prefix` then a decimal number (optionally negative) then CRLF. `NeedMore` while the
/// bytes are a proper prefix of that shape.
fn number_line(data: &[u8], prefix: u8, allow_negative: bool) -> (Detection, usize) {
    if data[0] != prefix {
        return (Detection::NoMatch, 0);
    }
    let mut i = 1;
    if allow_negative && data.get(i) == Some(&b'-') {
        i += 1;
    }
    let digits_start = i;
    while i < data.len() && data[i].is_ascii_digit() {
        i += 1;
        if i - digits_start > 10 {
            return (Detection::NoMatch, 0);
        }
    }
    if i == data.len() {
        return (Detection::NeedMore, 0);
    }
    if i == digits_start {
        return (Detection::NoMatch, 0);
    }
    match (data.get(i), data.get(i + 1)) {
        (Some(b'\r'), None) => (Detection::NeedMore, 0),
        (Some(b'\r'), Some(b'\n')) => (Detection::Match, i + 2),
        _ => (Detection::NoMatch, 0),
    }
}

fn detect_client(data: &[u8]) -> Detection {
    if data[0] == b'*' {
        return match number_line(data, b'*', false) {
            (Detection::Match, n) => match data.get(n) {
                None => Detection::NeedMore,
                Some(b'$') => match number_line(&data[n..], b'$', false) {
                    (Detection::Match, _) => Detection::Match,
                    (d, _) => d,
                },
                Some(_) => Detection::NoMatch,
            },
            (d, _) => d,
        };
    }
    // Inline command: a known word, then a space or the end of the line.
    let word_len = data
        .iter()
        .position(|&b| !b.is_ascii_alphabetic())
        .unwrap_or(data.len());
    let word = &data[..word_len];
    let known = |exact: bool| {
        INLINE.iter().any(|c| {
            let c = c.as_bytes();
            if exact {
                c.eq_ignore_ascii_case(word)
            } else {
                c.len() >= word.len() && c[..word.len()].eq_ignore_ascii_case(word)
            }
        })
    };
    if word_len == data.len() {
        return if known(false) {
            Detection::NeedMore
        } else {
            Detection::NoMatch
        };
    }
    if !known(true) || !matches!(data[word_len], b' ' | b'\r' | b'\n') {
        return Detection::NoMatch;
    }
    // The whole line is needed to rule out HTTP ("GET / HTTP/1.1").
    let Some(end) = data.iter().position(|&b| b == b'\n') else {
        return if data.len() < 1024 {
            Detection::NeedMore
        } else {
            Detection::NoMatch
        };
    };
    let line = &data[..end];
    if line.windows(5).any(|w| w == b"HTTP/") || line.windows(5).any(|w| w == b"RTSP/") {
        return Detection::NoMatch;
    }
    Detection::Match
}

fn detect_server(data: &[u8]) -> Detection {
    let exact = |lit: &[u8]| {
        if data.len() < lit.len() {
            if lit.starts_with(data) {
                Detection::NeedMore
            } else {
                Detection::NoMatch
            }
        } else if data.starts_with(lit) {
            Detection::Match
        } else {
            Detection::NoMatch
        }
    };
    match data[0] {
        b'+' => {
            for lit in [&b"+OK\r\n"[..], b"+PONG\r\n", b"+QUEUED\r\n"] {
                let d = exact(lit);
                if d != Detection::NoMatch {
                    return d;
                }
            }
            Detection::NoMatch
        }
        b'-' => {
            let word_len = data[1..].iter().position(|&b| !b.is_ascii_uppercase());
            let Some(word_len) = word_len else {
                return if data.len() < 16 {
                    Detection::NeedMore
                } else {
                    Detection::NoMatch
                };
            };
            let word = &data[1..1 + word_len];
            let sep = data[1 + word_len];
            if ERROR_CODES.iter().any(|c| c.as_bytes() == word) && matches!(sep, b' ' | b'\r') {
                Detection::Match
            } else {
                Detection::NoMatch
            }
        }
        b'$' | b':' => number_line(data, data[0], true).0,
        // Aggregates (array, map, set, attribute, push) whose first element is a RESP value.
        b'*' | b'%' | b'~' | b'|' | b'>' => match number_line(data, data[0], false) {
            (Detection::Match, n) => match data.get(n) {
                None => Detection::NeedMore,
                Some(
                    b'$' | b':' | b'*' | b'+' | b'%' | b'_' | b'-' | b',' | b'#' | b'~' | b'|',
                ) => Detection::Match,
                Some(_) => Detection::NoMatch,
            },
            (d, _) => d,
        },
        b'_' => exact(b"_\r\n"),
        _ => Detection::NoMatch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::*;

    #[test]
    fn client() {
        assert_eq!(
            detect(ClientToServer, b"*1\r\n$4\r\nPING\r\n"),
            Detection::Match
        );
        assert_eq!(detect(ClientToServer, b"*1\r"), Detection::NeedMore);
        assert_eq!(detect(ClientToServer, b"PING\r\n"), Detection::Match);
        assert_eq!(detect(ClientToServer, b"PIN"), Detection::NeedMore);
        assert_eq!(
            detect(ClientToServer, b"GET / HTTP/1.1\r\n"),
            Detection::NoMatch
        );
        assert_eq!(detect(ClientToServer, b"GET /"), Detection::NeedMore);
        assert_eq!(detect(ClientToServer, b"QUIT\r\n"), Detection::NoMatch);
        assert_eq!(detect(ClientToServer, b"\x16\x03\x01"), Detection::NoMatch);
    }

    #[test]
    fn server() {
        assert_eq!(detect(ServerToClient, b"+OK\r\n"), Detection::Match);
        assert_eq!(
            detect(ServerToClient, b"+OK POP3 ready\r\n"),
            Detection::NoMatch
        );
        assert_eq!(detect(ServerToClient, b"+PO"), Detection::NeedMore);
        assert_eq!(
            detect(ServerToClient, b"-ERR unknown\r\n"),
            Detection::Match
        );
        assert_eq!(detect(ServerToClient, b"$-1\r\n"), Detection::Match);
        assert_eq!(
            detect(ServerToClient, b"%7\r\n$6\r\nserver"),
            Detection::Match
        );
        assert_eq!(detect(ServerToClient, b"220 smtp"), Detection::NoMatch);
        assert_eq!(
            detect(ServerToClient, b"|1\r\n+key-popularity\r\n"),
            Detection::Match
        );
        assert_eq!(detect(ServerToClient, b"|1\r\n"), Detection::NeedMore);
    }
}
