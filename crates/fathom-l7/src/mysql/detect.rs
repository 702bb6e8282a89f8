//! Is a connection speaking MySQL? Decided from the first bytes of one direction.
//!
//! Server: the greeting (sequence id 0, protocol 10, a printable version string starting
//! with a digit), or an ERR packet refusing the connection. Client (connection picked up
//! after the handshake): a complete COM_QUERY / COM_STMT_PREPARE packet with sequence id 0 and
//! printable text, or a protocol-4.1 handshake response (sequence id 1, 23 zero filler bytes).

use crate::parser::{Detection, Direction};

pub fn detect(dir: Direction, data: &[u8]) -> Detection {
    if data.len() < 5 {
        return Detection::NeedMore;
    }
    let len = u32::from_le_bytes([data[0], data[1], data[2], 0]) as usize;
    let seq = data[3];
    let payload = &data[4..];
    if len == 0 {
        return Detection::NoMatch;
    }
    match dir {
        Direction::ServerToClient => detect_server(len, seq, payload),
        Direction::ClientToServer => detect_client(len, seq, payload),
    }
}

fn printable(b: &[u8]) -> bool {
    b.iter().all(|&c| c >= 0x20 || b"\t\r\n".contains(&c))
}

fn detect_server(len: usize, seq: u8, p: &[u8]) -> Detection {
    if seq != 0 || len > 1024 {
        return Detection::NoMatch;
    }
    match p[0] {
        10 => {
            let v = &p[1..];
            let Some(nul) = v.iter().position(|&b| b == 0) else {
                return if v.len() < 64 && printable(v) {
                    Detection::NeedMore
                } else {
                    Detection::NoMatch
                };
            };
            let version = &v[..nul];
            if version.first().is_some_and(u8::is_ascii_digit) && nul < 64 && printable(version) {
                Detection::Match
            } else {
                Detection::NoMatch
            }
        }
        0xff => {
            // ERR: code (2), then a printable message.
            if p.len() < 3 + 8 {
                return Detection::NeedMore;
            }
            let msg = &p[3..p.len().min(len)];
            if printable(msg) {
                Detection::Match
            } else {
                Detection::NoMatch
            }
        }
        _ => Detection::NoMatch,
    }
}

fn detect_client(len: usize, seq: u8, p: &[u8]) -> Detection {
    match seq {
        0 if matches!(p[0], 0x03 | 0x16) => {
            if len > 1 << 20 {
                return Detection::NoMatch;
            }
            let Some(body) = p.get(1..len) else {
                return if p.len() < 4096 {
                    Detection::NeedMore
                } else {
                    Detection::NoMatch
                };
            };
            if !body.is_empty() && printable(body) {
                Detection::Match
            } else {
                Detection::NoMatch
            }
        }
        1 if len >= 32 => {
            let Some(head) = p.get(..32) else {
                return Detection::NeedMore;
            };
            let caps = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let protocol_41 = caps & 0x200 != 0;
            if protocol_41 && head[9..32].iter().all(|&b| b == 0) {
                Detection::Match
            } else {
                Detection::NoMatch
            }
        }
        _ => Detection::NoMatch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::*;

    #[test]
    fn server_greeting_and_query() {
        let mut g = vec![0x4a, 0, 0, 0, 10];
        g.extend_from_slice(b"5.5.5-10.11.6-MariaDB\0");
        assert_eq!(detect(ServerToClient, &g), Detection::Match);
        assert_eq!(detect(ServerToClient, &g[..8]), Detection::NeedMore);
        assert_eq!(
            detect(ServerToClient, b"HTTP/1.1 200 OK\r\n"),
            Detection::NoMatch
        );
        let q = b"\x09\0\0\0\x03select 1";
        assert_eq!(detect(ClientToServer, q), Detection::Match);
        assert_eq!(detect(ClientToServer, &q[..7]), Detection::NeedMore);
        assert_eq!(
            detect(ClientToServer, b"GET / HTTP/1.1\r\n"),
            Detection::NoMatch
        );
    }
}
