//! Kafka wire protocol: size-prefixed requests and responses, paired by correlation id.
//!
//! A response carries only its correlation id, so the parser keeps, per pending request, the
//! API key and version needed to read it. The broker answers requests on a connection in
//! order; a response that skips pending requests means their responses were lost (they are
//! reported request-only). Produce with `acks=0` gets no response and is reported at once.
//!
//! Only the first `max_keep` bytes of a frame are kept (topic names and error codes come
//! first; record batches are passed over).

mod body;
mod detect;
mod names;

pub use detect::detect;

use std::collections::{HashMap, VecDeque};

use fathom_model::l7::kafka::KafkaExchange;
use fathom_model::l7::{L7Detail, L7Exchange, L7Protocol};

use crate::parser::{Direction, ParserStats, ProtocolParser};
use crate::wire::{build, Half, StreamBuf};
use body::Topic;

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct KafkaConfig {
    /// Largest frame considered valid (Kafka's `socket.request.max.bytes` defaults to 100 MB).
    pub max_frame: u32,
    /// Bytes of each frame kept for decoding.
    pub max_keep: usize,
    /// Requests waiting for a response.
    pub max_pending: usize,
    /// Topic id → name entries learned from Metadata responses (for Fetch v13+).
    pub max_topic_ids: usize,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            max_frame: 100 * 1024 * 1024,
            max_keep: 256 * 1024,
            max_pending: 1024,
            max_topic_ids: 4096,
        }
    }
}

#[derive(Debug, Default)]
struct Side {
    buf: StreamBuf,
    /// Not known to be at a frame boundary (start after a gap, or garbage seen).
    hunting: bool,
}

#[derive(Debug)]
struct Pending {
    half: Half,
    key: i16,
    version: i16,
    correlation_id: i32,
    client_id: Option<String>,
    topics: Vec<Topic>,
}

pub struct KafkaParser {
    cfg: KafkaConfig,
    client: Side,
    server: Side,
    pending: VecDeque<Pending>,
    topic_ids: HashMap<[u8; 16], String>,
    stats: ParserStats,
}

impl Default for KafkaParser {
    fn default() -> Self {
        Self::new()
    }
}

enum Step {
    Wait,
    Again,
}

impl KafkaParser {
    pub fn new() -> Self {
        Self::with_config(KafkaConfig::default())
    }

    pub fn with_config(cfg: KafkaConfig) -> Self {
        KafkaParser {
            cfg,
            client: Side::default(),
            server: Side::default(),
            pending: VecDeque::new(),
            topic_ids: HashMap::new(),
            stats: ParserStats::default(),
        }
    }

    fn keep(&self) -> usize {
        self.cfg.max_keep.max(64)
    }

    fn garbage(side: &mut Side, stats: &mut ParserStats) -> Step {
        side.buf.consume(1);
        side.hunting = true;
        stats.skipped_bytes += 1;
        Step::Again
    }

    fn step_client(&mut self, out: &mut Vec<L7Exchange>) -> Step {
        let keep = self.keep();
        let side = &mut self.client;
        let d = side.buf.data();
        if d.len() < 4 {
            return Step::Wait;
        }
        let size = i32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        if size < 10 || size as u32 > self.cfg.max_frame {
            return Self::garbage(side, &mut self.stats);
        }
        let size = size as usize;
        // Judge the header before waiting for the frame: key, version, correlation id, client id.
        let Some(h) = d.get(4..14) else {
            return Step::Wait;
        };
        let key = i16::from_be_bytes([h[0], h[1]]);
        let version = i16::from_be_bytes([h[2], h[3]]);
        let client_len = i16::from_be_bytes([h[8], h[9]]);
        let client_ok = client_len == -1
            || (0..=1024).contains(&client_len) && (client_len as usize) <= size - 10;
        if !names::plausible_version(key, version) || !client_ok {
            return Self::garbage(side, &mut self.stats);
        }
        if side.hunting {
            // While hunting, also insist on a non-empty printable client id: zeros and small
            // numbers inside a message would otherwise pass for a header with a large size.
            if !(1..=256).contains(&client_len) {
                return Self::garbage(side, &mut self.stats);
            }
            // Judge the bytes already there first, so a bogus length cannot make us wait.
            let end = 14 + client_len as usize;
            let id = &d[14.min(d.len())..end.min(d.len())];
            if !id.iter().all(|b| (0x20..0x7f).contains(b)) {
                return Self::garbage(side, &mut self.stats);
            }
            if d.len() < end {
                return Step::Wait;
            }
        }
        let kept = size.min(keep);
        let Some(frame) = d.get(4..4 + kept) else {
            return Step::Wait;
        };
        let ts = side.buf.ts();
        let header = body::request_header(frame);
        let info = header.as_ref().map(|h| {
            let flex = names::flexible_request(h.api_key, h.api_version);
            body::request_body(
                h.api_key,
                h.api_version,
                flex,
                &frame[h.len.min(frame.len())..],
            )
        });
        side.buf.skip_message(4 + size as u64);
        side.hunting = false;
        let (Some(h), Some(info)) = (header, info) else {
            self.stats.skipped_bytes += 4 + size as u64;
            return Step::Again;
        };
        let p = Pending {
            half: Half::new(ts, 4 + size as u64),
            key: h.api_key,
            version: h.api_version,
            correlation_id: h.correlation_id,
            client_id: h.client_id,
            topics: info.topics,
        };
        if info.no_response {
            self.emit(Some(p), None, None, out);
            return Step::Again;
        }
        if self.pending.len() >= self.cfg.max_pending.max(1) {
            if let Some(old) = self.pending.pop_front() {
                self.stats.overflow_bytes += old.half.bytes;
                self.emit(Some(old), None, None, out);
            }
        }
        self.pending.push_back(p);
        Step::Again
    }

    fn step_server(&mut self, out: &mut Vec<L7Exchange>) -> Step {
        let keep = self.keep();
        let side = &mut self.server;
        let d = side.buf.data();
        if d.len() < 8 {
            return Step::Wait;
        }
        let size = i32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        let corr = i32::from_be_bytes([d[4], d[5], d[6], d[7]]);
        if size < 4 || size as u32 > self.cfg.max_frame {
            return Self::garbage(side, &mut self.stats);
        }
        let at = self.pending.iter().position(|p| p.correlation_id == corr);
        if side.hunting && at.is_none() {
            // Only a pending correlation id marks a response boundary after a gap.
            return Self::garbage(side, &mut self.stats);
        }
        let size = size as usize;
        let kept = size.min(keep);
        let Some(frame) = d.get(4..4 + kept) else {
            return Step::Wait;
        };
        let ts = side.buf.ts();
        let half = Half::new(ts, 4 + size as u64);
        let info = at.and_then(|i| self.pending.get(i)).map(|p| {
            // After the correlation id: header tagged fields in flexible versions.
            let mut start = 4;
            if names::response_header_tagged(p.key, p.version) {
                let mut br = body::R::new(&frame[4..], true);
                // Header tagged fields.
                let n = br.c.uvarint().unwrap_or(0);
                for _ in 0..n.min(64) {
                    br.c.uvarint();
                    let len = br.c.uvarint().unwrap_or(0) as usize;
                    br.c.skip(len);
                }
                start += br.c.pos();
            }
            let flex = names::flexible_response(p.key, p.version);
            body::response_body(p.key, p.version, flex, &frame[start.min(frame.len())..])
        });
        side.buf.skip_message(4 + size as u64);
        side.hunting = false;
        match at {
            Some(i) => {
                // Requests answered out of turn lost their responses.
                for _ in 0..i {
                    if let Some(lost) = self.pending.pop_front() {
                        self.emit(Some(lost), None, None, out);
                    }
                }
                let p = self.pending.pop_front();
                if let Some(info) = &info {
                    for (id, name) in &info.topic_ids {
                        if self.topic_ids.len() < self.cfg.max_topic_ids
                            || self.topic_ids.contains_key(id)
                        {
                            self.topic_ids.insert(*id, name.clone());
                        }
                    }
                }
                self.emit(p, Some(half), info, out);
            }
            None => {
                // Mid-stream pickup: the request was not seen; only the correlation id is known.
                let e = KafkaExchange {
                    api_key: -1,
                    correlation_id: corr,
                    ..KafkaExchange::default()
                };
                self.stats.records += 1;
                out.push(build(
                    None,
                    Some(half),
                    false,
                    None,
                    false,
                    L7Detail::Kafka(e),
                ));
            }
        }
        Step::Again
    }

    fn topic_name(&self, t: &Topic) -> String {
        match t {
            Topic::Name(n) => n.clone(),
            Topic::Id(id) => self.topic_ids.get(id).cloned().unwrap_or_else(|| uuid(id)),
        }
    }

    fn emit(
        &mut self,
        p: Option<Pending>,
        resp: Option<Half>,
        info: Option<body::ResponseInfo>,
        out: &mut Vec<L7Exchange>,
    ) {
        let Some(p) = p else { return };
        let mut topics: Vec<String> = p.topics.iter().map(|t| self.topic_name(t)).collect();
        let (error_code, response_topics) = match info {
            Some(i) => (i.error_code, i.topics),
            None => (None, Vec::new()),
        };
        if topics.is_empty() && p.key == 3 {
            // A Metadata request for all topics: name the ones the broker listed.
            topics = response_topics;
        }
        let error_name = error_code.and_then(names::error_name);
        let status = match (error_code, &error_name) {
            (Some(0), _) => Some("OK".to_string()),
            (Some(_), Some(n)) => Some(n.clone()),
            _ => None,
        };
        let e = KafkaExchange {
            api_key: p.key,
            api_name: names::api_name(p.key),
            api_version: p.version,
            correlation_id: p.correlation_id,
            client_id: p.client_id,
            topics,
            error_code,
            error_name,
        };
        self.stats.records += 1;
        let failed = error_code.is_some_and(|c| c != 0);
        out.push(build(
            Some(p.half),
            resp,
            false,
            status,
            failed,
            L7Detail::Kafka(e),
        ));
    }
}

/// 8-4-4-4-12 hex form of a topic id.
fn uuid(id: &[u8; 16]) -> String {
    let h: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl ProtocolParser for KafkaParser {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Kafka
    }

    fn feed(&mut self, dir: Direction, ts_ns: u64, data: &[u8], out: &mut Vec<L7Exchange>) {
        for piece in data.chunks(self.keep()) {
            match dir {
                Direction::ClientToServer => self.client.buf.push(ts_ns, piece),
                Direction::ServerToClient => self.server.buf.push(ts_ns, piece),
            };
            loop {
                let step = match dir {
                    Direction::ClientToServer => self.step_client(out),
                    Direction::ServerToClient => self.step_server(out),
                };
                if let Step::Wait = step {
                    break;
                }
            }
        }
    }

    fn gap(&mut self, dir: Direction, len: u64) {
        self.stats.gap_bytes += len;
        let side = match dir {
            Direction::ClientToServer => &mut self.client,
            Direction::ServerToClient => &mut self.server,
        };
        self.stats.skipped_bytes += side.buf.clear() as u64;
        side.hunting = true;
    }

    fn finish(&mut self, _ts_ns: u64, out: &mut Vec<L7Exchange>) {
        for side in [&mut self.client, &mut self.server] {
            self.stats.skipped_bytes += side.buf.len() as u64;
            side.buf.clear();
        }
        while let Some(p) = self.pending.pop_front() {
            self.emit(Some(p), None, None, out);
        }
    }

    fn stats(&self) -> ParserStats {
        self.stats
    }
}
