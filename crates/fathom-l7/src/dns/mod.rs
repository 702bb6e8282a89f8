//! DNS over UDP (one message per datagram) and TCP (two-byte length prefix, RFC 1035 §4.2.2),
//! queries paired with responses by message id and question.
//!
//! Whether a message is a query or a response comes from its QR bit, not from the direction
//! it travelled: captures of resolvers talking port 53 to port 53, or picked up mid-way, make
//! the direction unreliable.

pub mod wire;

use std::collections::VecDeque;

use fathom_model::l7::dns::{DnsAnswer, DnsExchange};
use fathom_model::l7::{ExchangeKind, L7Detail, L7Exchange, L7Protocol};
use fathom_model::Timestamp;

use crate::parser::{Detection, Direction, ParserStats, ProtocolParser};
use wire::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsTransport {
    Udp,
    Tcp,
}

impl DnsTransport {
    fn name(self) -> &'static str {
        match self {
            DnsTransport::Udp => "udp",
            DnsTransport::Tcp => "tcp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsLimits {
    /// Queries waiting for a response; the oldest is reported query-only beyond this.
    pub max_pending: usize,
}

impl Default for DnsLimits {
    fn default() -> Self {
        DnsLimits { max_pending: 256 }
    }
}

/// Header sanity shared by the detectors: a known opcode, a sane question count, and record
/// counts a message of this size could hold.
fn plausible_header(msg: &[u8]) -> bool {
    if msg.len() < 12 {
        return false;
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let opcode = (flags >> 11) & 0xf;
    let qd = u16::from_be_bytes([msg[4], msg[5]]);
    let total: u32 = (0..4)
        .map(|i| u32::from(u16::from_be_bytes([msg[4 + 2 * i], msg[5 + 2 * i]])))
        .sum();
    // Z bit (0x0040) must be zero; every RR needs at least 11 bytes, a question 5.
    matches!(opcode, 0 | 1 | 2 | 4 | 5 | 6)
        && flags & 0x0040 == 0
        && qd <= 4
        && total * 5 <= msg.len() as u32
}

/// A whole message decodes cleanly to its announced counts.
fn decodes_cleanly(msg: &[u8]) -> bool {
    plausible_header(msg) && wire::decodes_whole(msg)
}

/// Inference over TCP: `len(2) + header + …`; needs the whole first message to say yes,
/// but rejects as soon as the header bytes seen cannot be DNS.
pub fn detect(_dir: Direction, data: &[u8]) -> Detection {
    if data.len() < 2 {
        return Detection::NeedMore;
    }
    let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
    if len < 12 {
        return Detection::NoMatch;
    }
    let avail = &data[2..];
    if avail.len() >= 4 {
        let flags = u16::from_be_bytes([avail[2], avail[3]]);
        if !matches!((flags >> 11) & 0xf, 0 | 1 | 2 | 4 | 5 | 6) || flags & 0x0040 != 0 {
            return Detection::NoMatch;
        }
    }
    if avail.len() >= 6 && u16::from_be_bytes([avail[4], avail[5]]) > 4 {
        return Detection::NoMatch;
    }
    if avail.len() < len {
        return Detection::NeedMore;
    }
    if decodes_cleanly(&avail[..len]) {
        Detection::Match
    } else {
        Detection::NoMatch
    }
}

/// Inference over UDP: `data` is one datagram.
pub fn detect_datagram(_dir: Direction, data: &[u8]) -> Detection {
    if decodes_cleanly(data) {
        Detection::Match
    } else {
        Detection::NoMatch
    }
}

struct PendingQuery {
    ts: u64,
    bytes: u64,
    msg: Message,
}

#[derive(Default)]
struct TcpBuf {
    buf: Vec<u8>,
    ts: u64,
    /// After a gap the next bytes may start mid-message: require a plausible header.
    resync: bool,
}

pub struct DnsParser {
    transport: DnsTransport,
    limits: DnsLimits,
    pending: VecDeque<PendingQuery>,
    tcp: [TcpBuf; 2],
    stats: ParserStats,
}

impl DnsParser {
    pub fn new(transport: DnsTransport) -> Self {
        Self::with_limits(transport, DnsLimits::default())
    }

    pub fn with_limits(transport: DnsTransport, limits: DnsLimits) -> Self {
        DnsParser {
            transport,
            limits,
            pending: VecDeque::new(),
            tcp: Default::default(),
            stats: ParserStats::default(),
        }
    }

    fn message(&mut self, ts: u64, bytes: u64, raw: &[u8], out: &mut Vec<L7Exchange>) {
        let Ok(msg) = wire::parse(raw) else {
            self.stats.skipped_bytes += bytes;
            return;
        };
        if !msg.response {
            if self.pending.len() >= self.limits.max_pending {
                if let Some(old) = self.pending.pop_front() {
                    self.emit(Some(old), None, out);
                }
            }
            self.pending.push_back(PendingQuery { ts, bytes, msg });
            return;
        }
        // Same id and same question; a response without a question section (mDNS) must at
        // least answer for the queried name, or unsolicited announcements would pair up.
        let same_question = |q: &PendingQuery| match (&q.msg.question, &msg.question) {
            (Some(a), Some(b)) => a.name.eq_ignore_ascii_case(&b.name) && a.qtype == b.qtype,
            (Some(a), None) => msg
                .answers
                .first()
                .is_some_and(|r| r.name.eq_ignore_ascii_case(&a.name)),
            _ => true,
        };
        let idx = self
            .pending
            .iter()
            .position(|q| q.msg.id == msg.id && same_question(q));
        let query = idx.and_then(|i| self.pending.remove(i));
        self.emit(query, Some(PendingQuery { ts, bytes, msg }), out);
    }

    fn emit(
        &mut self,
        q: Option<PendingQuery>,
        r: Option<PendingQuery>,
        out: &mut Vec<L7Exchange>,
    ) {
        let (kind, request_time) = match (&q, &r) {
            (Some(q), Some(_)) => (ExchangeKind::RequestResponse, q.ts),
            (Some(q), None) => (ExchangeKind::RequestOnly, q.ts),
            (None, Some(r)) => (ExchangeKind::ResponseOnly, r.ts),
            (None, None) => return,
        };
        // Both messages are consumed here: their strings move into the record.
        let (q_ts, q_bytes, mut q_msg) = match q {
            Some(p) => (Some(p.ts), p.bytes, Some(p.msg)),
            None => (None, 0, None),
        };
        let (r_ts, r_bytes, mut r_msg) = match r {
            Some(p) => (Some(p.ts), p.bytes, Some(p.msg)),
            None => (None, 0, None),
        };
        // The response repeats the question; prefer it when the query was not seen.
        let id = r_msg.as_ref().or(q_msg.as_ref()).map_or(0, |m| m.id);
        let recursion_desired = q_msg
            .as_ref()
            .or(r_msg.as_ref())
            .map(|m| m.recursion_desired);
        let question = r_msg
            .as_mut()
            .and_then(|m| m.question.take())
            .or_else(|| q_msg.as_mut().and_then(|m| m.question.take()));
        let (rcode, authoritative, truncated, recursion_available, answers) = match r_msg {
            Some(m) => (
                Some(m.rcode),
                Some(m.authoritative),
                Some(m.truncated),
                Some(m.recursion_available),
                m.answers,
            ),
            None => (None, None, None, None, Vec::new()),
        };
        let (qname, qtype, qclass) = match question {
            Some(qu) => (
                Some(qu.name),
                Some(wire::type_name(qu.qtype).into_owned()),
                Some(wire::class_name(qu.qclass).into_owned()),
            ),
            // Without a question anywhere, the first answer's owner is what was asked about.
            None => (answers.first().map(|a| a.name.clone()), None, None),
        };
        let rcode_name = rcode.map(|c| wire::rcode_name(c).into_owned());
        let detail = DnsExchange {
            id,
            qname,
            qtype,
            qclass,
            rcode: rcode_name.clone(),
            answers: answers
                .into_iter()
                .map(|a| DnsAnswer {
                    name: a.name,
                    rtype: wire::type_name(a.rtype).into_owned(),
                    ttl: a.ttl,
                    data: a.data,
                })
                .collect(),
            transport: self.transport.name().into(),
            authoritative,
            truncated,
            recursion_desired,
            recursion_available,
        };
        self.stats.records += 1;
        out.push(L7Exchange {
            kind,
            request_time: Some(Timestamp(request_time)),
            response_time: r_ts.map(Timestamp),
            latency_ns: match (q_ts, r_ts) {
                (Some(q), Some(r)) => Some(r.saturating_sub(q)),
                _ => None,
            },
            request_bytes: q_bytes,
            response_bytes: r_bytes,
            status: rcode_name,
            error: rcode.is_some_and(|c| c != 0),
            detail: L7Detail::Dns(detail),
        });
    }

    fn feed_tcp(&mut self, dir: Direction, ts: u64, data: &[u8], out: &mut Vec<L7Exchange>) {
        let i = dir_index(dir);
        let mut data = data;
        if self.tcp[i].resync && self.tcp[i].buf.is_empty() {
            // Resume only where a length prefix and a header line up.
            if detect(dir, data) == Detection::NoMatch {
                self.stats.skipped_bytes += data.len() as u64;
                return;
            }
            self.tcp[i].resync = false;
        }
        while !data.is_empty() {
            let b = &mut self.tcp[i];
            if b.buf.is_empty() {
                b.ts = ts;
            }
            // Take just enough for the current message so that the next one keeps its own
            // timestamp.
            let need = if b.buf.len() < 2 {
                2 - b.buf.len()
            } else {
                let len = usize::from(u16::from_be_bytes([b.buf[0], b.buf[1]]));
                2 + len - b.buf.len()
            };
            let take = need.min(data.len());
            b.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if b.buf.len() < 2 {
                continue;
            }
            let len = usize::from(u16::from_be_bytes([b.buf[0], b.buf[1]]));
            if b.buf.len() < 2 + len {
                continue;
            }
            let raw = std::mem::take(&mut b.buf);
            let mts = b.ts;
            if len < 12 {
                self.stats.skipped_bytes += raw.len() as u64;
                continue;
            }
            self.message(mts, raw.len() as u64, &raw[2..], out);
        }
    }
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

impl ProtocolParser for DnsParser {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Dns
    }

    fn feed(&mut self, dir: Direction, ts_ns: u64, data: &[u8], out: &mut Vec<L7Exchange>) {
        match self.transport {
            DnsTransport::Udp => {
                if data.len() < 12 {
                    self.stats.skipped_bytes += data.len() as u64;
                } else {
                    self.message(ts_ns, data.len() as u64, data, out);
                }
            }
            DnsTransport::Tcp => self.feed_tcp(dir, ts_ns, data, out),
        }
    }

    fn gap(&mut self, dir: Direction, len: u64) {
        self.stats.gap_bytes += len;
        if self.transport == DnsTransport::Tcp {
            let b = &mut self.tcp[dir_index(dir)];
            self.stats.skipped_bytes += b.buf.len() as u64;
            b.buf.clear();
            b.resync = true;
        }
    }

    fn finish(&mut self, _ts_ns: u64, out: &mut Vec<L7Exchange>) {
        for i in 0..2 {
            let raw = std::mem::take(&mut self.tcp[i].buf);
            if raw.len() >= 14 {
                // A message cut by the end of the capture: decode what is there.
                let ts = self.tcp[i].ts;
                self.message(ts, raw.len() as u64, &raw[2..], out);
            } else {
                self.stats.skipped_bytes += raw.len() as u64;
            }
        }
        while let Some(q) = self.pending.pop_front() {
            self.emit(Some(q), None, out);
        }
    }

    fn stats(&self) -> ParserStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: u16, name: &str) -> Vec<u8> {
        let mut m = vec![
            (id >> 8) as u8,
            id as u8,
            0x01,
            0x00,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        for l in name.split('.') {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        m
    }

    fn answer(q: &[u8], rcode: u8) -> Vec<u8> {
        let mut m = q.to_vec();
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        m[7] = 1;
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 10, 0, 0, 1]);
        m
    }

    #[test]
    fn udp_pairs_by_id_and_question() {
        let mut p = DnsParser::new(DnsTransport::Udp);
        let mut out = Vec::new();
        let (q1, q2) = (query(1, "a.example"), query(2, "b.example"));
        p.feed(Direction::ClientToServer, 10, &q1, &mut out);
        p.feed(Direction::ClientToServer, 20, &q2, &mut out);
        p.feed(Direction::ServerToClient, 50, &answer(&q2, 3), &mut out);
        p.finish(100, &mut out);
        assert_eq!(out.len(), 2);
        let L7Detail::Dns(d) = &out[0].detail else {
            panic!()
        };
        assert_eq!(
            (d.qname.as_deref(), d.rcode.as_deref(), out[0].latency_ns),
            (Some("b.example"), Some("NXDOMAIN"), Some(30))
        );
        assert_eq!(d.answers[0].data, "10.0.0.1");
        assert!(out[0].error);
        assert_eq!(out[1].kind, ExchangeKind::RequestOnly);
    }

    #[test]
    fn tcp_framing_any_chunking() {
        let q = query(7, "x.test");
        let a = answer(&q, 0);
        let mut c2s = (q.len() as u16).to_be_bytes().to_vec();
        c2s.extend_from_slice(&q);
        let mut s2c = (a.len() as u16).to_be_bytes().to_vec();
        s2c.extend_from_slice(&a);
        for chunk in 1..8 {
            let mut p = DnsParser::new(DnsTransport::Tcp);
            let mut out = Vec::new();
            for c in c2s.chunks(chunk) {
                p.feed(Direction::ClientToServer, 1, c, &mut out);
            }
            for c in s2c.chunks(chunk) {
                p.feed(Direction::ServerToClient, 2, c, &mut out);
            }
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].request_bytes, c2s.len() as u64);
        }
        assert_eq!(detect(Direction::ClientToServer, &c2s), Detection::Match);
        assert_eq!(
            detect(Direction::ClientToServer, &c2s[..5]),
            Detection::NeedMore
        );
        assert_eq!(
            detect(Direction::ClientToServer, b"GET / HTTP/1.1\r\n"),
            Detection::NoMatch
        );
        assert_eq!(
            detect_datagram(Direction::ClientToServer, &q),
            Detection::Match
        );
        assert_eq!(
            detect_datagram(Direction::ClientToServer, &q[..q.len() - 1]),
            Detection::NoMatch
        );
    }
}
