//! Is a connection speaking HTTP/2 (cleartext prior knowledge, or TLS plaintext after ALPN)?
//! The client starts with the 24-byte preface; the server's first frame is always SETTINGS.

use super::frame::{FrameHeader, PREFACE, SETTINGS};
use crate::parser::{Detection, Direction};

pub fn detect(dir: Direction, data: &[u8]) -> Detection {
    match dir {
        Direction::ClientToServer => {
            let n = data.len().min(PREFACE.len());
            if data[..n] != PREFACE[..n] {
                Detection::NoMatch
            } else if n < PREFACE.len() {
                Detection::NeedMore
            } else {
                Detection::Match
            }
        }
        Direction::ServerToClient => {
            // Header so far must be consistent with an empty-stream SETTINGS frame.
            let expect: [Option<u8>; 9] = [
                None,
                None,
                None,
                Some(SETTINGS),
                None,
                Some(0),
                Some(0),
                Some(0),
                Some(0),
            ];
            for (i, &b) in data.iter().take(9).enumerate() {
                if expect[i].is_some_and(|e| e != b) {
                    return Detection::NoMatch;
                }
            }
            let Some(h) = FrameHeader::parse(data) else {
                return Detection::NeedMore;
            };
            if !h.plausible(1 << 14) || h.flags != 0 {
                return Detection::NoMatch;
            }
            // Each setting: known identifier (1-6, 8, 9) and, for the ones with ranges, a
            // legal value.
            let body = &data[9..data.len().min(9 + h.len as usize)];
            for s in body.chunks(6) {
                if s.len() < 6 {
                    break;
                }
                let id = u16::from_be_bytes([s[0], s[1]]);
                let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
                let ok = match id {
                    2 => v <= 1,
                    4 => v <= 0x7fff_ffff,
                    5 => (16_384..=16_777_215).contains(&v),
                    1 | 3 | 6 | 8 | 9 => true,
                    _ => false,
                };
                if !ok {
                    return Detection::NoMatch;
                }
            }
            if body.len() < h.len as usize {
                Detection::NeedMore
            } else {
                Detection::Match
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::*;

    #[test]
    fn preface_and_settings() {
        assert_eq!(detect(ClientToServer, PREFACE), Detection::Match);
        assert_eq!(detect(ClientToServer, &PREFACE[..10]), Detection::NeedMore);
        assert_eq!(
            detect(ClientToServer, b"PRI * HTTP/1.1"),
            Detection::NoMatch
        );
        let settings = [
            0, 0, 12, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100, 0, 4, 0, 1, 0, 0,
        ];
        assert_eq!(detect(ServerToClient, &settings[..15]), Detection::NeedMore);
        assert_eq!(
            detect(ServerToClient, &[settings.to_vec(), vec![0; 3]].concat()),
            Detection::Match
        );
        assert_eq!(
            detect(ServerToClient, b"HTTP/1.1 200 OK\r\n"),
            Detection::NoMatch
        );
        assert_eq!(
            detect(ServerToClient, &[0, 0, 0, 4, 0, 0, 0, 0, 0]),
            Detection::Match
        );
    }
}
