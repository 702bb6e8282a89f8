//! Shared by the fuzz targets: turning fuzzer bytes into a conversation (chunks of bytes in
//! either direction, capture gaps, time) and driving a parser with it, plus the encoder the
//! seed generator uses to write valid conversations in the same format.
//!
//! Format: byte 0 chooses how data steps are cut before they reach the parser (0: whole,
//! n: pieces of n bytes), so one input exercises a parser's incremental paths too. Then
//! steps, each a header byte and a 16-bit little-endian length:
//! - header bit 0: direction (0 client → server, 1 server → client);
//! - header bit 1: a capture gap of `length` bytes instead of data;
//! - header bits 2..8: milliseconds that pass before the step;
//! - then `length` bytes of data (fewer if the input ends first).

use fathom_l7::parser::{Direction, ProtocolParser};
use fathom_model::l7::L7Exchange;

pub use fathom_model;

#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    Data {
        dir: Direction,
        ts: u64,
        bytes: &'a [u8],
    },
    Gap {
        dir: Direction,
        len: u64,
    },
}

/// A decoded conversation.
pub struct Script<'a> {
    /// Piece size data steps are cut into (0: whole).
    pub chunk: usize,
    pub steps: Vec<Step<'a>>,
    /// Time of the last step.
    pub end_ts: u64,
}

/// A plausible wall-clock start (2024-01-01), so that time arithmetic sees real magnitudes.
const T0: u64 = 1_704_067_200_000_000_000;

pub fn parse(data: &[u8]) -> Script<'_> {
    let chunk = data.first().copied().unwrap_or(0) as usize;
    let mut rest = data.get(1..).unwrap_or(&[]);
    let mut steps = Vec::new();
    let mut ts = T0;
    while rest.len() >= 3 {
        let h = rest[0];
        let len = u16::from_le_bytes([rest[1], rest[2]]) as usize;
        rest = &rest[3..];
        let dir = if h & 1 == 0 {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        ts += u64::from(h >> 2) * 1_000_000;
        if h & 2 != 0 {
            steps.push(Step::Gap {
                dir,
                len: len as u64,
            });
        } else {
            let n = len.min(rest.len());
            steps.push(Step::Data {
                dir,
                ts,
                bytes: &rest[..n],
            });
            rest = &rest[n..];
        }
    }
    Script {
        chunk,
        steps,
        end_ts: ts + 1,
    }
}

/// Feeds a byte-stream (TCP) parser the conversation, cut as the script says, then finishes
/// the connection. Returns the exchanges (so targets can look at them).
pub fn drive_stream<P: ProtocolParser + ?Sized>(p: &mut P, data: &[u8]) -> Vec<L7Exchange> {
    let s = parse(data);
    let mut out = Vec::new();
    for step in &s.steps {
        match *step {
            Step::Data { dir, ts, bytes } => {
                if s.chunk == 0 {
                    p.feed(dir, ts, bytes, &mut out);
                } else {
                    for piece in bytes.chunks(s.chunk) {
                        p.feed(dir, ts, piece, &mut out);
                    }
                }
            }
            Step::Gap { dir, len } => p.gap(dir, len),
        }
        // Exchanges are consumed as they come, as the session layer does; keeping them all
        // would make memory grow with the input instead of with the parser's state.
        check(&out);
        out.clear();
    }
    p.finish(s.end_ts, &mut out);
    check(&out);
    let _ = p.stats();
    out
}

/// Feeds a datagram (UDP) parser: every data step is one datagram, never cut.
pub fn drive_datagrams<P: ProtocolParser + ?Sized>(p: &mut P, data: &[u8]) -> Vec<L7Exchange> {
    let s = parse(data);
    let mut out = Vec::new();
    for step in &s.steps {
        match *step {
            Step::Data { dir, ts, bytes } => p.feed(dir, ts, bytes, &mut out),
            Step::Gap { dir, len } => p.gap(dir, len),
        }
        check(&out);
        out.clear();
    }
    p.finish(s.end_ts, &mut out);
    check(&out);
    let _ = p.stats();
    out
}

/// Cheap invariants every exchange must hold, whatever the input.
fn check(out: &[L7Exchange]) {
    for e in out {
        if let (Some(a), Some(b), Some(l)) = (e.request_time, e.response_time, e.latency_ns) {
            assert_eq!(
                b.0.saturating_sub(a.0),
                l,
                "latency is response minus request"
            );
        }
        // Every field must be printable (the CLI prints every record).
        let _ = format!("{e:?}");
    }
}

/// Encodes a conversation in the script format (for seeds): `(direction, bytes)` steps, each
/// 1 ms after the previous one.
pub fn encode(chunk: u8, steps: &[(Direction, &[u8])]) -> Vec<u8> {
    let mut v = vec![chunk];
    for (dir, bytes) in steps {
        for part in bytes.chunks(u16::MAX as usize) {
            let h = (1u8 << 2) | u8::from(*dir == Direction::ServerToClient);
            v.push(h);
            v.extend_from_slice(&(part.len() as u16).to_le_bytes());
            v.extend_from_slice(part);
        }
    }
    v
}
