//! Protocol inference: which parser a connection needs, decided from the first bytes of each
//! direction. Every protocol module exposes `detect(dir, data) -> Detection`; this module
//! orders them and combines their answers.
//!
//! Rules:
//! - A protocol is chosen only when its detector says `Match` on real bytes. Ports never
//!   decide; a protocol whose usual port matches the server port is merely asked first, which
//!   settles ties between detectors that could both match (e.g. DNS-over-TCP vs. Kafka framing).
//! - A higher-priority detector that still says `NeedMore` on the bytes seen so far holds the
//!   decision back, so that a short prefix cannot be claimed by a looser detector.
//! - If nothing matches with the connection's orientation, the directions are tried swapped
//!   (the capture may have missed the SYN and guessed client and server the wrong way round).

use fathom_model::l7::L7Protocol;

use crate::dns::{self, DnsParser, DnsTransport};
use crate::http1::{self, Http1Parser};
use crate::http2::{self, Http2Parser};
use crate::kafka::{self, KafkaParser};
use crate::mysql::{self, MysqlParser};
use crate::parser::{Detection, Direction, ProtocolParser};
use crate::postgres::{self, PostgresParser};
use crate::redis::{self, RedisParser};
use crate::tls::{self, TlsParser};

/// Transport a connection runs over; decides framing for datagram protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Tcp,
    Udp,
}

/// One protocol the engine can recognise on one transport.
#[derive(Clone, Copy)]
pub struct Candidate {
    pub protocol: L7Protocol,
    pub transport: Transport,
    /// Server ports usually used; a hint for ordering only.
    pub ports: &'static [u16],
    pub detect: fn(Direction, &[u8]) -> Detection,
    pub build: fn() -> Box<dyn ProtocolParser>,
}

impl std::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidate")
            .field("protocol", &self.protocol)
            .field("transport", &self.transport)
            .finish()
    }
}

/// All candidates, most specific signature first. The order matters only between detectors
/// that could match the same bytes; ports reorder on top of it. Fixed-magic protocols (TLS
/// record header, HTTP/2 preface, HTTP/1 methods, PostgreSQL startup codes) come before the
/// length-prefixed binary ones (MySQL, Kafka, DNS over TCP), and Redis (whose inline
/// commands are plain words) after HTTP.
pub fn registry() -> Vec<Candidate> {
    vec![
        Candidate {
            protocol: L7Protocol::Tls,
            transport: Transport::Tcp,
            ports: &[443, 8443, 993, 995, 465, 636, 853],
            detect: tls::detect,
            build: || Box::new(TlsParser::new()),
        },
        Candidate {
            // Prior-knowledge h2c and gRPC; the parser reports gRPC calls itself.
            protocol: L7Protocol::Http2,
            transport: Transport::Tcp,
            ports: &[50051],
            detect: http2::detect,
            build: || Box::new(Http2Parser::new()),
        },
        Candidate {
            protocol: L7Protocol::Http,
            transport: Transport::Tcp,
            ports: &[80, 8080, 8000, 3128],
            detect: http1::detect,
            build: || Box::new(Http1Parser::new()),
        },
        Candidate {
            protocol: L7Protocol::Postgres,
            transport: Transport::Tcp,
            ports: &[5432],
            detect: postgres::detect,
            build: || Box::new(PostgresParser::new()),
        },
        Candidate {
            protocol: L7Protocol::Mysql,
            transport: Transport::Tcp,
            ports: &[3306],
            detect: mysql::detect,
            build: || Box::new(MysqlParser::new()),
        },
        Candidate {
            protocol: L7Protocol::Kafka,
            transport: Transport::Tcp,
            ports: &[9092],
            detect: kafka::detect,
            build: || Box::new(KafkaParser::new()),
        },
        Candidate {
            protocol: L7Protocol::Redis,
            transport: Transport::Tcp,
            ports: &[6379],
            detect: redis::detect,
            build: || Box::new(RedisParser::new()),
        },
        Candidate {
            protocol: L7Protocol::Dns,
            transport: Transport::Tcp,
            ports: &[53, 853, 5353],
            detect: dns::detect,
            build: || Box::new(DnsParser::new(DnsTransport::Tcp)),
        },
        Candidate {
            protocol: L7Protocol::Dns,
            transport: Transport::Udp,
            ports: &[53, 5353, 5355],
            detect: dns::detect_datagram,
            build: || Box::new(DnsParser::new(DnsTransport::Udp)),
        },
    ]
}

/// The candidates for one connection: right transport, allowed protocols, port hint applied.
pub fn candidates_for(
    transport: Transport,
    server_port: u16,
    only: Option<&[L7Protocol]>,
) -> Vec<Candidate> {
    let mut c: Vec<Candidate> = registry()
        .into_iter()
        .filter(|c| c.transport == transport)
        .filter(|c| only.is_none_or(|o| o.contains(&c.protocol)))
        .collect();
    // Stable: port-hinted candidates move to the front, keeping their relative order.
    c.sort_by_key(|c| !c.ports.contains(&server_port));
    c
}

/// Outcome of looking at the bytes buffered so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not enough bytes to decide.
    Undecided,
    /// Use candidate `index`; `flipped` means client and server are the other way round.
    Decided { index: usize, flipped: bool },
    /// No candidate can match these bytes.
    Unknown,
}

fn check(c: &Candidate, c2s: &[u8], s2c: &[u8], flipped: bool) -> (bool, bool) {
    let (a, b) = if flipped { (s2c, c2s) } else { (c2s, s2c) };
    let mut matched = false;
    let mut waiting = false;
    for (dir, data) in [
        (Direction::ClientToServer, a),
        (Direction::ServerToClient, b),
    ] {
        if data.is_empty() {
            continue;
        }
        match (c.detect)(dir, data) {
            Detection::Match => matched = true,
            Detection::NeedMore => waiting = true,
            Detection::NoMatch => {}
        }
    }
    (matched, waiting)
}

/// Decide from the first bytes of each direction (`c2s`, `s2c`, each from the start of the
/// stream or from the last gap). `final_call` means no more bytes will come (buffer limit,
/// end of connection): waiting detectors then count as not matching.
pub fn infer(cands: &[Candidate], c2s: &[u8], s2c: &[u8], final_call: bool) -> Verdict {
    if c2s.is_empty() && s2c.is_empty() {
        return if final_call {
            Verdict::Unknown
        } else {
            Verdict::Undecided
        };
    }
    for flipped in [false, true] {
        for (index, c) in cands.iter().enumerate() {
            let (matched, waiting) = check(c, c2s, s2c, flipped);
            if matched {
                return Verdict::Decided { index, flipped };
            }
            if waiting && !final_call {
                return Verdict::Undecided;
            }
        }
    }
    // Both directions spoke and nothing fits: more bytes will not help. With only one side
    // heard from, the other may still identify the protocol (server-first protocols).
    if final_call || (!c2s.is_empty() && !s2c.is_empty()) {
        Verdict::Unknown
    } else {
        Verdict::Undecided
    }
}

/// Datagram transports: each datagram stands alone.
pub fn infer_datagram(cands: &[Candidate], dir: Direction, datagram: &[u8]) -> Verdict {
    for flipped in [false, true] {
        let d = if flipped { dir.reverse() } else { dir };
        for (index, c) in cands.iter().enumerate() {
            if (c.detect)(d, datagram) == Detection::Match {
                return Verdict::Decided { index, flipped };
            }
        }
    }
    Verdict::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_only_reorders() {
        let c = candidates_for(Transport::Tcp, 6379, None);
        assert_eq!(c[0].protocol, L7Protocol::Redis);
        // HTTP on the Redis port is still HTTP.
        let v = infer(&c, b"GET / HTTP/1.1\r\n\r\n", b"", false);
        let Verdict::Decided { index, flipped } = v else {
            panic!("{v:?}")
        };
        assert_eq!((c[index].protocol, flipped), (L7Protocol::Http, false));
    }

    #[test]
    fn waits_then_decides_or_gives_up() {
        let c = candidates_for(Transport::Tcp, 80, None);
        assert_eq!(infer(&c, b"GE", b"", false), Verdict::Undecided);
        assert_eq!(
            infer(&c, b"\x00\x00\x00\x00garbage", b"\xffmore garbage", false),
            Verdict::Unknown
        );
        assert_eq!(infer(&c, b"GE", b"", true), Verdict::Unknown);
    }

    #[test]
    fn swapped_orientation() {
        let c = candidates_for(Transport::Tcp, 40000, None);
        let v = infer(&c, b"HTTP/1.1 200 OK\r\n", b"GET / HTTP/1.1\r\n", false);
        let Verdict::Decided { index, flipped } = v else {
            panic!("{v:?}")
        };
        assert_eq!(c[index].protocol, L7Protocol::Http);
        assert!(flipped);
    }
}
