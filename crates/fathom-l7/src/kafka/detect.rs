//! Is a connection speaking Kafka? Only the client side can tell: a request starts with a
//! plausible size, a known API key, a version that API has, and a short printable client id.
//! A response is a size and a correlation id, which any binary protocol could start with.

use super::names;
use crate::parser::{Detection, Direction};

pub fn detect(dir: Direction, data: &[u8]) -> Detection {
    if dir == Direction::ServerToClient {
        return Detection::NoMatch;
    }
    let field = |at: usize, n: usize| data.get(at..at + n);
    // Check each field as soon as it is there, so that other protocols are ruled out early.
    let Some(s) = field(0, 4) else {
        // Sizes above 100 MB are not Kafka: the first byte must be 0..=5.
        return if data.first().is_some_and(|&b| b > 5) {
            Detection::NoMatch
        } else {
            Detection::NeedMore
        };
    };
    let size = i32::from_be_bytes([s[0], s[1], s[2], s[3]]);
    if !(10..=100 * 1024 * 1024).contains(&size) {
        return Detection::NoMatch;
    }
    let Some(k) = field(4, 4) else {
        return Detection::NeedMore;
    };
    let key = i16::from_be_bytes([k[0], k[1]]);
    let version = i16::from_be_bytes([k[2], k[3]]);
    if !names::plausible_version(key, version) {
        return Detection::NoMatch;
    }
    let Some(c) = field(12, 2) else {
        return Detection::NeedMore;
    };
    let len = i16::from_be_bytes([c[0], c[1]]);
    if len == -1 {
        return Detection::Match;
    }
    if !(1..=256).contains(&len) || len as i32 > size - 10 {
        return Detection::NoMatch;
    }
    let id = &data[14..data.len().min(14 + len as usize)];
    if !id.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Detection::NoMatch;
    }
    if id.len() < len as usize {
        Detection::NeedMore
    } else {
        Detection::Match
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::*;

    #[test]
    fn requests() {
        // ApiVersions v3, correlation 1, client id "rdkafka".
        let mut r = vec![0, 0, 0, 0];
        r.extend_from_slice(&[0, 18, 0, 3, 0, 0, 0, 1, 0, 7]);
        r.extend_from_slice(b"rdkafka");
        r.extend_from_slice(&[0, 0]);
        let size = (r.len() - 4) as u32;
        r[..4].copy_from_slice(&size.to_be_bytes());
        assert_eq!(detect(ClientToServer, &r), Detection::Match);
        assert_eq!(detect(ClientToServer, &r[..10]), Detection::NeedMore);
        assert_eq!(
            detect(ClientToServer, b"GET / HTTP/1.1\r\n"),
            Detection::NoMatch
        );
        assert_eq!(
            detect(ClientToServer, b"\x16\x03\x01\x02\x00"),
            Detection::NoMatch
        );
        assert_eq!(detect(ServerToClient, &r), Detection::NoMatch);
    }
}
