//! The contract between the session layer (which owns a connection's byte streams) and each
//! protocol parser. Parsers are incremental: bytes arrive in arbitrary chunks, and feeding one
//! byte at a time must give the same records as feeding everything at once.

use fathom_model::l7::{L7Exchange, L7Protocol};

/// Direction of bytes on a connection, relative to the client (the side that opened it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    pub fn reverse(self) -> Self {
        match self {
            Direction::ClientToServer => Direction::ServerToClient,
            Direction::ServerToClient => Direction::ClientToServer,
        }
    }
}

/// Counters every parser keeps, reported per connection and summed per protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParserStats {
    /// Bytes the parser could not make sense of and skipped while resynchronising.
    pub skipped_bytes: u64,
    /// Bytes lost before reaching the parser (capture gaps), as told by `gap`.
    pub gap_bytes: u64,
    /// Bytes dropped because a per-connection buffer limit was reached.
    pub overflow_bytes: u64,
    pub records: u64,
}

/// A protocol parser for one connection (both directions).
pub trait ProtocolParser: Send {
    fn protocol(&self) -> L7Protocol;

    /// Feed bytes seen in `dir` at `ts_ns` (wall clock, ns since the epoch). Completed exchanges
    /// are pushed to `out`. Never panics and never errors: bytes that cannot be parsed are
    /// skipped and counted in `stats().skipped_bytes`.
    fn feed(&mut self, dir: Direction, ts_ns: u64, data: &[u8], out: &mut Vec<L7Exchange>);

    /// `len` bytes in `dir` were lost (capture gap). The parser drops partial state for that
    /// direction and resynchronises on the next message boundary it can recognise.
    fn gap(&mut self, dir: Direction, len: u64);

    /// The connection is over (FIN/RST or end of capture): emit pending one-sided exchanges.
    fn finish(&mut self, ts_ns: u64, out: &mut Vec<L7Exchange>);

    fn stats(&self) -> ParserStats;
}

/// Answer of a protocol's `detect(dir, data)` function during inference.
///
/// Detectors look only at the first bytes seen in one direction of a connection; they must not
/// decide by port, and they must answer `NeedMore` (not `NoMatch`) while the prefix is still
/// consistent with their protocol but too short to be sure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detection {
    /// The bytes are this protocol (with good confidence).
    Match,
    /// The bytes cannot be this protocol.
    NoMatch,
    /// The bytes so far are consistent with this protocol; more are needed to decide.
    NeedMore,
}
