//! Connections: bytes of both directions in, [`L7Record`]s out.
//!
//! A [`Connection`] buffers the first bytes (bounded) until [`crate::infer`] names the
//! protocol, replays them into the chosen parser, then streams. Exchanges become records with
//! the connection's endpoints (client = source). A [`SessionTable`] holds many connections,
//! bounded, evicting the least recently active.
//!
//! [`AutoParser`] is the buffering-and-inference part on its own, usable wherever a byte
//! stream of unknown protocol appears (HTTP CONNECT tunnels use it).

use std::collections::HashMap;
use std::net::SocketAddr;

use fathom_model::l7::{L7Exchange, L7Protocol, L7Record};
use fathom_model::{Endpoint, Timestamp};

pub use crate::infer::Transport;
use crate::infer::{self, Candidate, Verdict};
use crate::parser::{Direction, ParserStats, ProtocolParser};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOptions {
    /// Bytes buffered per connection while the protocol is unknown. Past this the
    /// connection is declared unknown and its bytes are only counted.
    pub max_inference_bytes: usize,
    /// Datagrams looked at before a UDP flow is declared unknown.
    pub max_inference_datagrams: usize,
    /// Only these protocols are considered (None: all).
    pub protocols: Option<Vec<L7Protocol>>,
    /// Connections a [`SessionTable`] keeps at once.
    pub max_connections: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            max_inference_bytes: 16 * 1024,
            max_inference_datagrams: 8,
            protocols: None,
            max_connections: 65_536,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Data {
        dir: Direction,
        ts: u64,
        start: usize,
        len: usize,
    },
    Gap {
        dir: Direction,
        len: u64,
    },
}

enum Engine {
    /// Protocol unknown so far: everything seen, in arrival order.
    Inferring {
        items: Vec<Item>,
        bytes: Vec<u8>,
        datagrams: usize,
        /// `bytes.len()` when TCP inference last ran. Inference looks at everything buffered
        /// with every detector, so running it on each arrival makes a prefix that trickles
        /// in (1-byte segments) quadratic: about a second of CPU for the 16 KiB budget. It
        /// runs again once the buffer has doubled, or a direction speaks for the first time
        /// (since the start or its last gap); the buffer limit and the end of the connection
        /// still decide on everything buffered, as a single large chunk would.
        inferred_at: usize,
        /// Directions with data since the start or their last gap (bit 0: client → server).
        spoke: u8,
    },
    Parsing {
        parser: Box<dyn ProtocolParser>,
        flipped: bool,
    },
    /// No protocol recognised; bytes are counted, not parsed.
    Unknown,
}

/// Counters for one stream of unknown protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AutoStats {
    /// Bytes of streams no protocol was recognised for.
    pub unknown_bytes: u64,
    /// Bytes dropped because the inference buffer was full before a decision.
    pub inference_overflow: u64,
}

/// Buffers until inference decides, then drives the chosen parser. Implements
/// [`ProtocolParser`] so it can sit wherever a parser is expected.
pub struct AutoParser {
    transport: Transport,
    cands: Vec<Candidate>,
    max_bytes: usize,
    max_datagrams: usize,
    engine: Engine,
    stats: AutoStats,
}

impl AutoParser {
    /// `server_port` only orders candidates (see [`crate::infer`]).
    pub fn new(transport: Transport, server_port: Option<u16>) -> Self {
        Self::with_options(transport, server_port, &SessionOptions::default())
    }

    pub fn with_options(
        transport: Transport,
        server_port: Option<u16>,
        opts: &SessionOptions,
    ) -> Self {
        AutoParser {
            transport,
            cands: infer::candidates_for(
                transport,
                server_port.unwrap_or(0),
                opts.protocols.as_deref(),
            ),
            max_bytes: opts.max_inference_bytes,
            max_datagrams: opts.max_inference_datagrams,
            engine: Engine::Inferring {
                items: Vec::new(),
                bytes: Vec::new(),
                datagrams: 0,
                inferred_at: 0,
                spoke: 0,
            },
            stats: AutoStats::default(),
        }
    }

    /// The protocol chosen, once known.
    pub fn chosen(&self) -> Option<L7Protocol> {
        match &self.engine {
            Engine::Parsing { parser, .. } => Some(parser.protocol()),
            _ => None,
        }
    }

    /// Inference found client and server the other way round.
    pub fn flipped(&self) -> bool {
        matches!(self.engine, Engine::Parsing { flipped: true, .. })
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self.engine, Engine::Unknown)
    }

    pub fn auto_stats(&self) -> AutoStats {
        self.stats
    }

    /// The first bytes of `dir` since its last gap.
    fn prefix(items: &[Item], bytes: &[u8], dir: Direction) -> Vec<u8> {
        let mut out = Vec::new();
        for it in items {
            match *it {
                Item::Data {
                    dir: d, start, len, ..
                } if d == dir => out.extend_from_slice(&bytes[start..start + len]),
                Item::Gap { dir: d, .. } if d == dir => out.clear(),
                _ => {}
            }
        }
        out
    }

    fn decide(&mut self, final_call: bool, out: &mut Vec<L7Exchange>) {
        let Engine::Inferring {
            items,
            bytes,
            datagrams,
            ..
        } = &self.engine
        else {
            return;
        };
        let verdict = match self.transport {
            Transport::Tcp => {
                let c2s = Self::prefix(items, bytes, Direction::ClientToServer);
                let s2c = Self::prefix(items, bytes, Direction::ServerToClient);
                let full = final_call || bytes.len() >= self.max_bytes;
                infer::infer(&self.cands, &c2s, &s2c, full)
            }
            Transport::Udp => {
                // The newest datagram decides; older ones did not match anything.
                match items.last() {
                    Some(Item::Data {
                        dir, start, len, ..
                    }) => {
                        match infer::infer_datagram(
                            &self.cands,
                            *dir,
                            &bytes[*start..*start + *len],
                        ) {
                            Verdict::Unknown if *datagrams < self.max_datagrams && !final_call => {
                                Verdict::Undecided
                            }
                            v => v,
                        }
                    }
                    _ => Verdict::Undecided,
                }
            }
        };
        match verdict {
            Verdict::Undecided => {}
            Verdict::Unknown => {
                let Engine::Inferring { bytes, .. } =
                    std::mem::replace(&mut self.engine, Engine::Unknown)
                else {
                    return;
                };
                self.stats.unknown_bytes += bytes.len() as u64;
            }
            Verdict::Decided { index, flipped } => {
                let Some(c) = self.cands.get(index) else {
                    return;
                };
                let parser = (c.build)();
                let Engine::Inferring { items, bytes, .. } =
                    std::mem::replace(&mut self.engine, Engine::Parsing { parser, flipped })
                else {
                    return;
                };
                let Engine::Parsing { parser, .. } = &mut self.engine else {
                    return;
                };
                // UDP: datagrams before the one that matched were not this protocol's.
                let skip_until = match self.transport {
                    Transport::Udp => items.len().saturating_sub(1),
                    Transport::Tcp => 0,
                };
                for (i, it) in items.into_iter().enumerate() {
                    match it {
                        Item::Data {
                            dir,
                            ts,
                            start,
                            len,
                        } => {
                            if i < skip_until {
                                self.stats.unknown_bytes += len as u64;
                                continue;
                            }
                            let d = if flipped { dir.reverse() } else { dir };
                            parser.feed(d, ts, &bytes[start..start + len], out);
                        }
                        Item::Gap { dir, len } => {
                            parser.gap(if flipped { dir.reverse() } else { dir }, len)
                        }
                    }
                }
            }
        }
    }
}

fn dir_bit(dir: Direction) -> u8 {
    match dir {
        Direction::ClientToServer => 1,
        Direction::ServerToClient => 2,
    }
}

impl ProtocolParser for AutoParser {
    /// The chosen protocol; HTTP before a decision (the only host of nested streams today).
    fn protocol(&self) -> L7Protocol {
        self.chosen().unwrap_or(L7Protocol::Http)
    }

    fn feed(&mut self, dir: Direction, ts_ns: u64, data: &[u8], out: &mut Vec<L7Exchange>) {
        if data.is_empty() {
            return;
        }
        match &mut self.engine {
            Engine::Parsing { parser, flipped } => {
                let d = if *flipped { dir.reverse() } else { dir };
                parser.feed(d, ts_ns, data, out);
            }
            Engine::Unknown => self.stats.unknown_bytes += data.len() as u64,
            Engine::Inferring {
                items,
                bytes,
                datagrams,
                inferred_at,
                spoke,
            } => {
                // A datagram is judged whole, so one always fits (UDP caps it at 64 KiB).
                let budget = match self.transport {
                    Transport::Udp => self.max_bytes.max(bytes.len() + data.len().min(65_536)),
                    Transport::Tcp => self.max_bytes,
                };
                let room = budget.saturating_sub(bytes.len());
                let take = data.len().min(room);
                if take > 0 {
                    items.push(Item::Data {
                        dir,
                        ts: ts_ns,
                        start: bytes.len(),
                        len: take,
                    });
                    bytes.extend_from_slice(&data[..take]);
                }
                *datagrams += 1;
                let overflowed = take < data.len();
                let bit = dir_bit(dir);
                let due = self.transport == Transport::Udp
                    || overflowed
                    || *spoke & bit == 0
                    || bytes.len() >= inferred_at.saturating_mul(2);
                *spoke |= bit;
                if !due {
                    return;
                }
                *inferred_at = bytes.len();
                self.decide(overflowed, out);
                if overflowed {
                    // The decision was made on the buffered head of this chunk; the parser it
                    // chose gets the tail too, so a large first write (a 100 KB SET over a
                    // 64 KB loopback segment) is parsed whole, not cut at the budget.
                    let tail = &data[take..];
                    match &mut self.engine {
                        Engine::Parsing { parser, flipped } => {
                            parser.feed(
                                if *flipped { dir.reverse() } else { dir },
                                ts_ns,
                                tail,
                                out,
                            );
                        }
                        _ => {
                            self.stats.inference_overflow += tail.len() as u64;
                            self.stats.unknown_bytes += tail.len() as u64;
                        }
                    }
                }
            }
        }
    }

    fn gap(&mut self, dir: Direction, len: u64) {
        match &mut self.engine {
            Engine::Parsing { parser, flipped } => {
                parser.gap(if *flipped { dir.reverse() } else { dir }, len)
            }
            Engine::Unknown => {}
            Engine::Inferring { items, spoke, .. } => {
                items.push(Item::Gap { dir, len });
                // The direction's prefix starts again after the gap.
                *spoke &= !dir_bit(dir);
            }
        }
    }

    fn finish(&mut self, ts_ns: u64, out: &mut Vec<L7Exchange>) {
        if matches!(self.engine, Engine::Inferring { .. }) {
            self.decide(true, out);
        }
        if let Engine::Parsing { parser, .. } = &mut self.engine {
            parser.finish(ts_ns, out);
        }
    }

    fn stats(&self) -> ParserStats {
        let mut s = ParserStats::default();
        if let Engine::Parsing { parser, .. } = &self.engine {
            let p = parser.stats();
            s.skipped_bytes += p.skipped_bytes;
            s.gap_bytes += p.gap_bytes;
            s.overflow_bytes += p.overflow_bytes;
            s.records += p.records;
        }
        s.overflow_bytes += self.stats.inference_overflow;
        s
    }
}

/// Counters for one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    pub protocol: Option<L7Protocol>,
    pub parser: ParserStats,
    pub unknown_bytes: u64,
}

/// One connection (TCP) or flow (UDP) between a client and a server.
pub struct Connection {
    client: Endpoint,
    server: Endpoint,
    flow_id: Option<String>,
    tls_plaintext: bool,
    engine: AutoParser,
    scratch: Vec<L7Exchange>,
    last_ts: u64,
}

impl Connection {
    /// `client` opened the connection (or is believed to have); inference may swap the two
    /// when the bytes say otherwise.
    pub fn new(
        client: SocketAddr,
        server: SocketAddr,
        transport: Transport,
        opts: &SessionOptions,
    ) -> Self {
        Connection {
            client: Endpoint::new(client.ip(), client.port()),
            server: Endpoint::new(server.ip(), server.port()),
            flow_id: None,
            tls_plaintext: false,
            engine: AutoParser::with_options(transport, Some(server.port()), opts),
            scratch: Vec::new(),
            last_ts: 0,
        }
    }

    pub fn with_flow_id(mut self, id: impl Into<String>) -> Self {
        self.flow_id = Some(id.into());
        self
    }

    /// Bytes come from TLS library probes (plaintext of an encrypted connection).
    pub fn with_tls_plaintext(mut self, yes: bool) -> Self {
        self.tls_plaintext = yes;
        self
    }

    pub fn protocol(&self) -> Option<L7Protocol> {
        self.engine.chosen()
    }

    pub fn is_unknown(&self) -> bool {
        self.engine.is_unknown()
    }

    pub fn last_activity(&self) -> u64 {
        self.last_ts
    }

    pub fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            protocol: self.protocol(),
            parser: self.engine.stats(),
            unknown_bytes: self.engine.auto_stats().unknown_bytes,
        }
    }

    /// Bytes seen in `dir` (relative to the believed client) at `ts_ns`. For UDP, one call is
    /// one datagram.
    pub fn feed(&mut self, dir: Direction, ts_ns: u64, data: &[u8], out: &mut Vec<L7Record>) {
        self.last_ts = self.last_ts.max(ts_ns);
        let mut ex = std::mem::take(&mut self.scratch);
        self.engine.feed(dir, ts_ns, data, &mut ex);
        self.records(&mut ex, out);
        self.scratch = ex;
    }

    pub fn gap(&mut self, dir: Direction, len: u64) {
        self.engine.gap(dir, len);
    }

    /// The connection ended (or the capture did): pending one-sided exchanges come out.
    pub fn finish(&mut self, ts_ns: u64, out: &mut Vec<L7Record>) {
        let mut ex = std::mem::take(&mut self.scratch);
        self.engine.finish(ts_ns, &mut ex);
        self.records(&mut ex, out);
        self.scratch = ex;
    }

    fn records(&self, ex: &mut Vec<L7Exchange>, out: &mut Vec<L7Record>) {
        let (src, dst) = if self.engine.flipped() {
            (&self.server, &self.client)
        } else {
            (&self.client, &self.server)
        };
        for e in ex.drain(..) {
            out.push(L7Record {
                time: e
                    .request_time
                    .or(e.response_time)
                    .unwrap_or(Timestamp(self.last_ts)),
                source: src.clone(),
                destination: dst.clone(),
                process: None,
                flow_id: self.flow_id.clone(),
                tls_plaintext: self.tls_plaintext,
                exchange: e,
            });
        }
    }
}

/// Identity of a connection: transport and the (believed) client and server sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub transport: Transport,
    pub client: SocketAddr,
    pub server: SocketAddr,
}

/// Totals over a table's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    pub opened: u64,
    pub evicted: u64,
}

/// Many connections, bounded: when full, the least recently active one is finished and
/// dropped to make room.
pub struct SessionTable {
    opts: SessionOptions,
    conns: HashMap<ConnKey, Connection, ahash::RandomState>,
    stats: TableStats,
}

impl SessionTable {
    pub fn new(opts: SessionOptions) -> Self {
        SessionTable {
            opts,
            conns: HashMap::default(),
            stats: TableStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub fn stats(&self) -> TableStats {
        self.stats
    }

    pub fn get(&self, key: &ConnKey) -> Option<&Connection> {
        self.conns.get(key)
    }

    fn entry(&mut self, key: ConnKey, ts: u64, out: &mut Vec<L7Record>) -> &mut Connection {
        if !self.conns.contains_key(&key) {
            if self.conns.len() >= self.opts.max_connections.max(1) {
                // The least recently active sixteenth goes at once, so that a burst of new
                // connections costs one scan per many, not one each.
                let mut by_age: Vec<(u64, ConnKey)> = self
                    .conns
                    .iter()
                    .map(|(k, c)| (c.last_activity(), *k))
                    .collect();
                let n = (by_age.len() / 16).max(1);
                by_age.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
                for (_, k) in by_age.into_iter().take(n) {
                    if let Some(mut c) = self.conns.remove(&k) {
                        c.finish(ts, out);
                        self.stats.evicted += 1;
                    }
                }
            }
            self.stats.opened += 1;
        }
        let opts = &self.opts;
        self.conns
            .entry(key)
            .or_insert_with(|| Connection::new(key.client, key.server, key.transport, opts))
    }

    pub fn feed(
        &mut self,
        key: ConnKey,
        dir: Direction,
        ts_ns: u64,
        data: &[u8],
        out: &mut Vec<L7Record>,
    ) {
        self.entry(key, ts_ns, out).feed(dir, ts_ns, data, out);
    }

    pub fn gap(&mut self, key: ConnKey, dir: Direction, len: u64, out: &mut Vec<L7Record>) {
        self.entry(key, 0, out).gap(dir, len);
    }

    /// The connection is over: finish and forget it.
    pub fn close(
        &mut self,
        key: &ConnKey,
        ts_ns: u64,
        out: &mut Vec<L7Record>,
    ) -> Option<ConnectionStats> {
        let mut c = self.conns.remove(key)?;
        c.finish(ts_ns, out);
        Some(c.stats())
    }

    pub fn finish_all(&mut self, ts_ns: u64, out: &mut Vec<L7Record>) {
        for (_, mut c) in self.conns.drain() {
            c.finish(ts_ns, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn infers_http_and_fills_endpoints() {
        let mut c = Connection::new(
            addr("10.0.0.1:40000"),
            addr("10.0.0.2:8080"),
            Transport::Tcp,
            &SessionOptions::default(),
        )
        .with_flow_id("f1");
        let mut out = Vec::new();
        for b in b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n" {
            c.feed(
                Direction::ClientToServer,
                5,
                std::slice::from_ref(b),
                &mut out,
            );
        }
        c.feed(
            Direction::ServerToClient,
            9,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            &mut out,
        );
        assert_eq!(c.protocol(), Some(L7Protocol::Http));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].source.port, 40000);
        assert_eq!(out[0].flow_id.as_deref(), Some("f1"));
        assert_eq!(out[0].exchange.latency_ns, Some(4));
    }

    #[test]
    fn swapped_roles_are_corrected() {
        let mut c = Connection::new(
            addr("10.0.0.2:80"),
            addr("10.0.0.1:40000"),
            Transport::Tcp,
            &SessionOptions::default(),
        );
        let mut out = Vec::new();
        c.feed(
            Direction::ClientToServer,
            1,
            b"HTTP/1.1 204 No Content\r\n\r\n",
            &mut out,
        );
        c.feed(
            Direction::ServerToClient,
            2,
            b"GET /next HTTP/1.1\r\n\r\n",
            &mut out,
        );
        c.finish(3, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].source.port, 40000,
            "client is the side that sends requests"
        );
    }

    /// Runs `segs` through an AutoParser, each cut into `chunk`-byte pieces.
    fn auto_run(segs: &[(Direction, &[u8])], chunk: usize) -> (Vec<L7Exchange>, AutoStats) {
        let mut p = AutoParser::new(Transport::Tcp, Some(6379));
        let mut out = Vec::new();
        for (i, (dir, data)) in segs.iter().enumerate() {
            for piece in data.chunks(chunk) {
                p.feed(*dir, i as u64 + 1, piece, &mut out);
            }
        }
        p.finish(100, &mut out);
        (out, p.auto_stats())
    }

    #[test]
    fn trickling_prefix_decides_like_a_whole_one() {
        // Inference re-runs only when the buffer has doubled (it used to run on every byte:
        // quadratic, about a second of CPU for a 16 KiB prefix in 1-byte segments). The
        // records must not depend on that.
        let big = format!(
            "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$9000\r\n{}\r\n",
            "v".repeat(9000)
        );
        let segs: [(Direction, &[u8]); 4] = [
            (Direction::ClientToServer, big.as_bytes()),
            (Direction::ServerToClient, b"+OK\r\n"),
            (Direction::ClientToServer, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
            (Direction::ServerToClient, b"$-1\r\n"),
        ];
        let whole = auto_run(&segs, usize::MAX);
        assert_eq!(whole.0.len(), 2);
        for chunk in [1, 2, 7, 1000] {
            assert_eq!(auto_run(&segs, chunk), whole, "chunk {chunk}");
        }
        // Server-first: the greeting is looked at as soon as it arrives, however much the
        // client had sent before.
        let mut p = AutoParser::new(Transport::Tcp, None);
        let mut out = Vec::new();
        p.feed(Direction::ClientToServer, 1, &[0xee; 100], &mut out);
        let greeting = b"\x4a\x00\x00\x00\x0a8.0.36\x00\x08\x00\x00\x00abcdefgh\x00\xff\xff\xff\x02\x00\xff\xdf\x15\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00ijklmnopqrst\x00caching_sha2_password\x00";
        p.feed(Direction::ServerToClient, 2, greeting, &mut out);
        assert_eq!(p.chosen(), Some(L7Protocol::Mysql));
    }

    #[test]
    fn unknown_protocol_is_bounded() {
        let opts = SessionOptions {
            max_inference_bytes: 64,
            ..Default::default()
        };
        let mut c = Connection::new(
            addr("10.0.0.1:1"),
            addr("10.0.0.2:2"),
            Transport::Tcp,
            &opts,
        );
        let mut out = Vec::new();
        c.feed(Direction::ClientToServer, 1, &[0xee; 1000], &mut out);
        c.feed(Direction::ClientToServer, 1, &[0xee; 1000], &mut out);
        assert!(c.is_unknown());
        assert!(out.is_empty());
        assert_eq!(c.stats().unknown_bytes, 2000);
    }

    #[test]
    fn large_first_datagram_is_judged_whole() {
        // A 32 KB DNS response (EDNS over UDP) seen before any query.
        let mut m = vec![0, 7, 0x81, 0x80, 0, 1, 0x07, 0xd0, 0, 0, 0, 0];
        m.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01");
        for i in 0..2000u16 {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 9, 0, 4, 10, 0]);
            m.extend_from_slice(&i.to_be_bytes());
        }
        let mut c = Connection::new(
            addr("10.0.0.1:5000"),
            addr("10.0.0.2:53"),
            Transport::Udp,
            &SessionOptions::default(),
        );
        let mut out = Vec::new();
        c.feed(Direction::ServerToClient, 1, &m, &mut out);
        c.finish(2, &mut out);
        assert_eq!(c.protocol(), Some(L7Protocol::Dns));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn table_evicts_least_recent() {
        let opts = SessionOptions {
            max_connections: 2,
            ..Default::default()
        };
        let mut t = SessionTable::new(opts);
        let mut out = Vec::new();
        for (i, port) in [1000u16, 1001, 1002].iter().enumerate() {
            let key = ConnKey {
                transport: Transport::Tcp,
                client: addr(&format!("10.0.0.1:{port}")),
                server: addr("10.0.0.2:80"),
            };
            t.feed(
                key,
                Direction::ClientToServer,
                i as u64,
                b"GET / HTTP/1.1\r\n\r\n",
                &mut out,
            );
        }
        assert_eq!((t.len(), t.stats().evicted), (2, 1));
        assert_eq!(
            out.len(),
            1,
            "the evicted connection's request comes out request-only"
        );
        t.finish_all(10, &mut out);
        assert_eq!(out.len(), 3);
    }
}
