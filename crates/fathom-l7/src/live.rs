//! Live capture: payload chunks of individual sockets (from syscall tracepoints or TLS library
//! uprobes) in, [`L7Record`]s out, attributed to the process that owns the socket.
//!
//! Every socket is its own stream (keyed by process, fd and socket cookie, plus the peer for
//! unconnected UDP), because on one node both ends of a connection may be captured: the
//! client's socket and the server's socket carry the same bytes. Each stream runs its own
//! [`Connection`] (inference, parser, pairing). When both ends of a connection are on this
//! node, the client's stream is the one reported (its records carry the client process); the
//! server's stream is parsed but its records are dropped and counted as duplicates.
//!
//! Bounds: at most `max_streams` streams (the least recently active sixteenth is finished
//! and dropped when full); each stream's memory is bounded by the engine (inference buffer,
//! parser limits). A stream no protocol is recognised for is dropped at once and remembered
//! as dead (a few bytes), so it never holds memory or stalls other streams.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use fathom_model::l7::L7Record;
use fathom_model::ProcessInfo;

use crate::parser::Direction;
use crate::session::{Connection, SessionOptions, Transport};

/// Which end of its connection a socket is, as far as the kernel saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketRole {
    Unknown,
    Client,
    Server,
}

/// One read or write of one socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketChunk<'a> {
    pub pid: u32,
    pub tid: u32,
    pub comm: &'a str,
    pub cgroup_id: u64,
    pub fd: i32,
    pub cookie: u64,
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub role: SocketRole,
    /// The process wrote (true) or read (false).
    pub egress: bool,
    pub ts_ns: u64,
    /// Bytes the call really moved; more than `data.len()` when the capture was truncated.
    pub moved: u64,
    pub data: &'a [u8],
    /// Plaintext from TLS library uprobes.
    pub tls: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct StreamKey {
    pid: u32,
    fd: i32,
    cookie: u64,
    tls: bool,
    /// Unconnected UDP sockets talk to many peers: one stream each.
    peer: Option<SocketAddr>,
}

/// The (client port, server port) of a connection: the same from both ends. Addresses are
/// compared apart ([`same_host`]) because an unconnected UDP socket only knows its wildcard.
type Pairing = (u16, u16);

fn same_host(a: IpAddr, b: IpAddr) -> bool {
    a == b || a.is_unspecified() || b.is_unspecified()
}

struct Live {
    conn: Connection,
    client_side: bool,
    pairing: Pairing,
    client_ip: IpAddr,
    process: ProcessInfo,
    last_ts: u64,
}

enum Stream {
    Live(Box<Live>),
    /// No protocol recognised: bytes only counted.
    Dead,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStats {
    pub chunks: u64,
    pub bytes: u64,
    pub streams_opened: u64,
    pub streams_evicted: u64,
    /// Streams dropped because no protocol parser accepted their bytes.
    pub streams_unparseable: u64,
    /// Bytes arriving on streams already dropped as unparseable.
    pub unparseable_bytes: u64,
    /// Bytes the kernel did not copy (truncated calls), fed to parsers as gaps.
    pub gap_bytes: u64,
    pub records: u64,
    /// Server-side records not reported because the client side is captured on this node.
    pub duplicates: u64,
}

#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub session: SessionOptions,
    pub max_streams: usize,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            session: SessionOptions::default(),
            max_streams: 16_384,
        }
    }
}

/// How long a server-side record waits for the client side of its connection to show up
/// before it is reported as seen from the server only. The client's send may return after the
/// server has already read and answered (UDP on one node), so its stream can open late.
pub const SERVER_SIDE_HOLD_NS: u64 = 250_000_000;

struct Held {
    until_ns: u64,
    pairing: Pairing,
    client_ip: IpAddr,
    record: L7Record,
}

pub struct SocketStreams {
    opts: LiveOptions,
    held: std::collections::VecDeque<Held>,
    streams: HashMap<StreamKey, Stream, ahash::RandomState>,
    /// Connections whose client socket is a live stream here: the client addresses, one entry
    /// per such stream.
    client_sides: HashMap<Pairing, Vec<IpAddr>, ahash::RandomState>,
    stats: LiveStats,
    scratch: Vec<L7Record>,
}

/// Which end a socket of unknown role is: the end with the lower port is taken for the
/// server (well-known and listening ports are below the ephemeral range). Inference swaps
/// the two when the bytes say otherwise.
fn is_client(role: SocketRole, local: SocketAddr, remote: SocketAddr) -> bool {
    match role {
        SocketRole::Client => true,
        SocketRole::Server => false,
        SocketRole::Unknown => remote.port() <= local.port(),
    }
}

impl SocketStreams {
    pub fn new(opts: LiveOptions) -> Self {
        SocketStreams {
            opts,
            streams: HashMap::default(),
            held: Default::default(),
            client_sides: HashMap::default(),
            stats: LiveStats::default(),
            scratch: Vec::new(),
        }
    }

    pub fn stats(&self) -> LiveStats {
        self.stats
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    fn key(c: &SocketChunk<'_>) -> StreamKey {
        StreamKey {
            pid: c.pid,
            fd: c.fd,
            cookie: c.cookie,
            tls: c.tls,
            peer: (c.transport == Transport::Udp).then_some(c.remote),
        }
    }

    /// Feed one chunk; records completed by it are appended to `out`.
    pub fn feed(&mut self, c: &SocketChunk<'_>, out: &mut Vec<L7Record>) {
        self.stats.chunks += 1;
        self.stats.bytes += c.data.len() as u64;
        let key = Self::key(c);
        if !self.streams.contains_key(&key) {
            self.make_room(c.ts_ns, out);
            self.open(key, c);
        }
        let mut produced = std::mem::take(&mut self.scratch);
        let unknown = match self.streams.get_mut(&key) {
            Some(Stream::Live(s)) => {
                let dir = if c.egress == s.client_side {
                    Direction::ClientToServer
                } else {
                    Direction::ServerToClient
                };
                s.last_ts = s.last_ts.max(c.ts_ns);
                s.conn.feed(dir, c.ts_ns, c.data, &mut produced);
                let missing = c.moved.saturating_sub(c.data.len() as u64);
                if missing > 0 {
                    self.stats.gap_bytes += missing;
                    s.conn.gap(dir, missing);
                }
                s.conn.is_unknown()
            }
            Some(Stream::Dead) => {
                self.stats.unparseable_bytes += c.moved.max(c.data.len() as u64);
                false
            }
            None => false,
        };
        self.emit(&key, &mut produced, out);
        self.scratch = produced;
        if unknown {
            self.stats.streams_unparseable += 1;
            self.kill(&key);
        }
    }

    /// The socket was closed: pending exchanges come out and the stream is forgotten.
    pub fn close(&mut self, pid: u32, fd: i32, cookie: u64, ts_ns: u64, out: &mut Vec<L7Record>) {
        let keys: Vec<StreamKey> = self
            .streams
            .keys()
            .filter(|k| k.pid == pid && k.fd == fd && (cookie == 0 || k.cookie == cookie))
            .copied()
            .collect();
        for k in keys {
            self.finish(&k, ts_ns, out);
        }
    }

    /// Everything still open is finished (shutdown), held records included.
    pub fn finish_all(&mut self, ts_ns: u64, out: &mut Vec<L7Record>) {
        let keys: Vec<StreamKey> = self.streams.keys().copied().collect();
        for k in keys {
            self.finish(&k, ts_ns, out);
        }
        self.flush(u64::MAX, out);
    }

    fn open(&mut self, key: StreamKey, c: &SocketChunk<'_>) {
        let client_side = is_client(c.role, c.local, c.remote);
        let (client, server) = if client_side {
            (c.local, c.remote)
        } else {
            (c.remote, c.local)
        };
        let pairing = (client.port(), server.port());
        let conn = Connection::new(client, server, c.transport, &self.opts.session)
            .with_tls_plaintext(c.tls);
        if client_side {
            self.client_sides
                .entry(pairing)
                .or_default()
                .push(client.ip());
            let before = self.held.len();
            self.held
                .retain(|h| !(h.pairing == pairing && same_host(h.client_ip, client.ip())));
            self.stats.duplicates += (before - self.held.len()) as u64;
        }
        self.stats.streams_opened += 1;
        self.streams.insert(
            key,
            Stream::Live(Box::new(Live {
                conn,
                client_side,
                pairing,
                client_ip: client.ip(),
                process: ProcessInfo {
                    pid: c.pid,
                    tid: Some(c.tid),
                    ppid: None,
                    comm: c.comm.to_string(),
                    exe: None,
                    cgroup_id: Some(c.cgroup_id),
                    container_id: None,
                },
                last_ts: c.ts_ns,
            })),
        );
    }

    /// Records of a stream leave through here: client side with its process, server side only
    /// when the client side is not captured here.
    fn emit(&mut self, key: &StreamKey, produced: &mut Vec<L7Record>, out: &mut Vec<L7Record>) {
        if produced.is_empty() {
            return;
        }
        let Some(Stream::Live(s)) = self.streams.get(key) else {
            produced.clear();
            return;
        };
        let client_here = self
            .client_sides
            .get(&s.pairing)
            .is_some_and(|ips| ips.iter().any(|ip| same_host(*ip, s.client_ip)));
        if !s.client_side && client_here {
            self.stats.duplicates += produced.len() as u64;
            produced.clear();
            return;
        }
        if !s.client_side {
            let until_ns = s.last_ts.saturating_add(SERVER_SIDE_HOLD_NS);
            for record in produced.drain(..) {
                self.held.push_back(Held {
                    until_ns,
                    pairing: s.pairing,
                    client_ip: s.client_ip,
                    record,
                });
            }
            return;
        }
        for mut r in produced.drain(..) {
            r.process = Some(s.process.clone());
            self.stats.records += 1;
            out.push(r);
        }
    }

    /// Server-side records whose client side did not show up within the hold time come out.
    /// Call with the current time (same clock as the chunks) every so often.
    pub fn flush(&mut self, now_ns: u64, out: &mut Vec<L7Record>) {
        while self.held.front().is_some_and(|h| h.until_ns <= now_ns) {
            if let Some(h) = self.held.pop_front() {
                self.stats.records += 1;
                out.push(h.record);
            }
        }
    }

    fn forget_pairing(&mut self, s: &Live) {
        if !s.client_side {
            return;
        }
        if let Some(ips) = self.client_sides.get_mut(&s.pairing) {
            if let Some(i) = ips.iter().position(|ip| *ip == s.client_ip) {
                ips.swap_remove(i);
            }
            if ips.is_empty() {
                self.client_sides.remove(&s.pairing);
            }
        }
    }

    fn kill(&mut self, key: &StreamKey) {
        if let Some(Stream::Live(s)) = self.streams.insert(*key, Stream::Dead) {
            self.forget_pairing(&s);
        }
    }

    fn finish(&mut self, key: &StreamKey, ts_ns: u64, out: &mut Vec<L7Record>) {
        let mut produced = std::mem::take(&mut self.scratch);
        if let Some(Stream::Live(s)) = self.streams.get_mut(key) {
            s.conn.finish(ts_ns, &mut produced);
        }
        self.emit(key, &mut produced, out);
        self.scratch = produced;
        if let Some(Stream::Live(s)) = self.streams.remove(key) {
            self.forget_pairing(&s);
        }
    }

    fn make_room(&mut self, ts_ns: u64, out: &mut Vec<L7Record>) {
        if self.streams.len() < self.opts.max_streams.max(1) {
            return;
        }
        let mut by_age: Vec<(u64, StreamKey)> = self
            .streams
            .iter()
            .map(|(k, s)| match s {
                Stream::Live(l) => (l.last_ts, *k),
                Stream::Dead => (0, *k),
            })
            .collect();
        let n = (by_age.len() / 16).max(1);
        by_age.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
        for (_, k) in by_age.into_iter().take(n) {
            self.finish(&k, ts_ns, out);
            self.stats.streams_evicted += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fathom_model::l7::L7Detail;

    #[allow(clippy::too_many_arguments)]
    fn chunk<'a>(
        pid: u32,
        fd: i32,
        local: &str,
        remote: &str,
        role: SocketRole,
        egress: bool,
        ts: u64,
        data: &'a [u8],
    ) -> SocketChunk<'a> {
        SocketChunk {
            pid,
            tid: pid,
            comm: if role == SocketRole::Server {
                "nginx"
            } else {
                "curl"
            },
            cgroup_id: 7,
            fd,
            cookie: 0,
            transport: Transport::Tcp,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            role,
            egress,
            ts_ns: ts,
            moved: data.len() as u64,
            data,
            tls: false,
        }
    }

    const REQ: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    const RESP: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn both_ends_on_one_node_report_once_with_the_client_process() {
        let mut t = SocketStreams::new(LiveOptions::default());
        let mut out = Vec::new();
        let (c, s) = ("10.0.0.1:40000", "10.0.0.2:80");
        t.feed(
            &chunk(10, 3, c, s, SocketRole::Client, true, 1, REQ),
            &mut out,
        );
        t.feed(
            &chunk(20, 7, s, c, SocketRole::Server, false, 2, REQ),
            &mut out,
        );
        t.feed(
            &chunk(20, 7, s, c, SocketRole::Server, true, 3, RESP),
            &mut out,
        );
        t.feed(
            &chunk(10, 3, c, s, SocketRole::Client, false, 4, RESP),
            &mut out,
        );
        t.close(10, 3, 0, 5, &mut out);
        t.close(20, 7, 0, 5, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let r = &out[0];
        assert_eq!(r.source.port, 40000);
        assert_eq!(r.destination.port, 80);
        let p = r.process.as_ref().expect("client process");
        assert_eq!((p.pid, p.comm.as_str()), (10, "curl"));
        let L7Detail::Http(h) = &r.exchange.detail else {
            panic!("not http: {:?}", r.exchange.detail)
        };
        assert_eq!(h.method.as_deref(), Some("GET"));
        assert_eq!(h.status, Some(404));
        assert_eq!(t.stats().duplicates, 1);
        assert!(t.is_empty());
    }

    #[test]
    fn server_only_streams_are_reported_and_unknown_ones_dropped() {
        let mut t = SocketStreams::new(LiveOptions::default());
        let mut out = Vec::new();
        let (c, s) = ("10.9.9.9:40000", "10.0.0.2:80");
        t.feed(
            &chunk(20, 7, s, c, SocketRole::Server, false, 2, REQ),
            &mut out,
        );
        t.feed(
            &chunk(20, 7, s, c, SocketRole::Server, true, 3, RESP),
            &mut out,
        );
        assert!(out.is_empty(), "held for the client side to show up");
        t.flush(3 + SERVER_SIDE_HOLD_NS, &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].process.is_none(), "the client is not on this node");
        assert_eq!(out[0].source.port, 40000);

        let garbage = vec![0xA5u8; 20_000];
        t.feed(
            &chunk(
                30,
                4,
                "10.0.0.3:5000",
                "10.0.0.4:6000",
                SocketRole::Client,
                true,
                4,
                &garbage,
            ),
            &mut out,
        );
        assert_eq!(t.stats().streams_unparseable, 1);
        t.feed(
            &chunk(
                30,
                4,
                "10.0.0.3:5000",
                "10.0.0.4:6000",
                SocketRole::Client,
                true,
                5,
                &garbage,
            ),
            &mut out,
        );
        assert_eq!(t.stats().unparseable_bytes, 20_000);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn a_client_side_that_opens_late_still_wins() {
        let mut t = SocketStreams::new(LiveOptions::default());
        let mut out = Vec::new();
        let (c, s) = ("0.0.0.0:40000", "10.0.0.2:53");
        let (cr, sr) = ("10.0.0.1:40000", "10.0.0.2:53");
        // The server read and answered before the client's send returned.
        t.feed(
            &chunk(20, 7, s, cr, SocketRole::Server, false, 2, REQ),
            &mut out,
        );
        t.feed(
            &chunk(20, 7, s, cr, SocketRole::Server, true, 3, RESP),
            &mut out,
        );
        t.feed(
            &chunk(10, 3, c, sr, SocketRole::Client, true, 4, REQ),
            &mut out,
        );
        t.feed(
            &chunk(10, 3, c, sr, SocketRole::Client, false, 5, RESP),
            &mut out,
        );
        t.flush(u64::MAX, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].process.is_some());
        assert_eq!(t.stats().duplicates, 1);
    }

    #[test]
    fn streams_are_bounded() {
        let mut t = SocketStreams::new(LiveOptions {
            max_streams: 32,
            ..Default::default()
        });
        let mut out = Vec::new();
        for i in 0..100 {
            let local = format!("10.0.0.1:{}", 40000 + i);
            t.feed(
                &chunk(
                    10,
                    i,
                    &local,
                    "10.0.0.2:80",
                    SocketRole::Client,
                    true,
                    i as u64,
                    REQ,
                ),
                &mut out,
            );
        }
        assert!(t.len() <= 32);
        assert!(t.stats().streams_evicted >= 68);
    }
}
