//! Redis (RESP2 and RESP3) commands and replies.
//!
//! Commands (arrays of bulk strings, or inline commands) are queued as they arrive and replies
//! pair with them in order, which is how pipelining works: N commands, then N replies. What does
//! not pair:
//! - RESP3 push messages and RESP2 pub/sub deliveries (`message`, `pmessage`, `smessage`
//!   arrays on a subscribed connection) are [`ExchangeKind::Message`] records;
//! - a subscribe command is answered by one confirmation per channel: the first answers the
//!   command, the others are messages;
//! - commands sent while `CLIENT REPLY OFF`/`SKIP` is in effect get no reply and are reported
//!   as request-only straight away, in order.
//!
//! [`ExchangeKind::Message`]: fathom_model::l7::ExchangeKind::Message

mod command;
mod detect;
mod resp;

pub use detect::detect;

use std::collections::VecDeque;

use fathom_model::l7::redis::RedisCommand;
use fathom_model::l7::{L7Detail, L7Exchange, L7Protocol};

use crate::parser::{Direction, ParserStats, ProtocolParser};
use crate::wire::{build, Half};
use command::ReplyMode;
use resp::{RespLimits, RespReader, Side, Step, Value};

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct RedisConfig {
    /// Longest protocol line (and inline command) accepted; longer ones are skipped.
    pub max_line: usize,
    /// Commands waiting for a reply; beyond this the oldest is reported as request-only.
    pub max_pending: usize,
    /// Bytes kept of the command name, key and of reply/error texts.
    pub max_text: usize,
    /// Deepest aggregate nesting followed.
    pub max_depth: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            max_line: 64 * 1024,
            max_pending: 4096,
            max_text: 256,
            max_depth: 64,
        }
    }
}

#[derive(Debug)]
struct Pending {
    half: Half,
    detail: RedisCommand,
    /// The server will not answer (CLIENT REPLY OFF/SKIP).
    no_reply: bool,
}

pub struct RedisParser {
    cfg: RedisConfig,
    client: RespReader,
    server: RespReader,
    pending: VecDeque<Pending>,
    reply_mode: ReplyMode,
    /// A (P|S)SUBSCRIBE was sent: RESP2 arrays of kind "message" are deliveries, not replies.
    subscribed: bool,
    /// RESP3 negotiated (HELLO 3) or RESP3 types seen.
    resp3: bool,
    stats: ParserStats,
}

impl Default for RedisParser {
    fn default() -> Self {
        Self::new()
    }
}

impl RedisParser {
    pub fn new() -> Self {
        Self::with_config(RedisConfig::default())
    }

    pub fn with_config(cfg: RedisConfig) -> Self {
        let limits = RespLimits {
            max_line: cfg.max_line.max(16),
            max_depth: cfg.max_depth.max(1),
            // Enough positions to find the key of the commands in `command::key`.
            max_items: 8,
            max_item_len: cfg.max_text.max(8),
        };
        RedisParser {
            cfg,
            client: RespReader::new(Side::Client, limits),
            server: RespReader::new(Side::Server, limits),
            pending: VecDeque::new(),
            reply_mode: ReplyMode::On,
            subscribed: false,
            resp3: false,
            stats: ParserStats::default(),
        }
    }

    fn resp_version(&self) -> Option<u8> {
        Some(if self.resp3 { 3 } else { 2 })
    }

    fn on_command(&mut self, v: Value, out: &mut Vec<L7Exchange>) {
        let name = command::name(&v.items);
        let key = command::key(&v.items);
        let first = v
            .items
            .first()
            .map(|s| s.to_ascii_uppercase())
            .unwrap_or_default();
        if matches!(first.as_str(), "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE") {
            self.subscribed = true;
        }
        if first == "HELLO" && v.items.get(1).is_some_and(|p| p == "3") {
            self.resp3 = true;
        }
        let expects = command::apply_reply_mode(&mut self.reply_mode, &v.items);
        let detail = RedisCommand {
            command: name,
            key,
            args: v.children.saturating_sub(1) as u32,
            reply_type: None,
            error: None,
            resp_version: None,
        };
        if self.pending.len() >= self.cfg.max_pending.max(1) {
            // Bounded queue: the oldest command is given up as unanswered.
            if let Some(old) = self.pending.pop_front() {
                self.stats.overflow_bytes += old.half.bytes;
                self.emit_request_only(old, out);
            }
        }
        self.pending.push_back(Pending {
            half: Half::new(v.ts, v.bytes),
            detail,
            no_reply: !expects,
        });
        self.drain_unanswered(out);
    }

    /// Commands at the head of the queue that will get no reply are reported now, so that
    /// records come out in command order.
    fn drain_unanswered(&mut self, out: &mut Vec<L7Exchange>) {
        while self.pending.front().is_some_and(|p| p.no_reply) {
            if let Some(p) = self.pending.pop_front() {
                self.emit_request_only(p, out);
            }
        }
    }

    fn emit_request_only(&mut self, p: Pending, out: &mut Vec<L7Exchange>) {
        let mut detail = p.detail;
        detail.resp_version = self.resp_version();
        self.stats.records += 1;
        out.push(build(
            Some(p.half),
            None,
            false,
            None,
            false,
            L7Detail::Redis(detail),
        ));
    }

    fn on_reply(&mut self, v: Value, out: &mut Vec<L7Exchange>) {
        // Commands given up after a gap in the replies are reported before anything pairs.
        self.drain_unanswered(out);
        self.resp3 |= v.resp3;
        let half = Half::new(v.ts, v.bytes);
        let first = v.items.first().map(String::as_str).unwrap_or("");
        let aggregate = v.kind == "push" || v.kind == "array";
        let delivery =
            aggregate && command::is_pubsub_message(first) && (v.kind == "push" || self.subscribed);
        let confirmation = aggregate && command::is_subscription_reply(first);
        let answers_front = self.pending.front().is_some_and(|p| {
            p.detail
                .command
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(first))
        });
        let is_message =
            delivery || (confirmation && !answers_front) || (v.kind == "push" && !confirmation);
        let (status, error) = outcome(&v);
        let mut detail = RedisCommand {
            reply_type: Some(v.kind.to_string()),
            error: v
                .kind
                .contains("error")
                .then(|| v.text.clone().unwrap_or_default()),
            resp_version: self.resp_version(),
            ..RedisCommand::default()
        };
        self.stats.records += 1;
        if is_message {
            // Server-initiated: named after what it is ("message", "subscribe", …).
            detail.command = Some(first.to_ascii_uppercase()).filter(|s| !s.is_empty());
            detail.args = v.children.saturating_sub(1) as u32;
            out.push(build(
                None,
                Some(half),
                true,
                status,
                error,
                L7Detail::Redis(detail),
            ));
            return;
        }
        match self.pending.pop_front() {
            Some(p) => {
                if p.detail.command.as_deref() == Some("RESET") && !error {
                    self.subscribed = false;
                }
                detail.command = p.detail.command;
                detail.key = p.detail.key;
                detail.args = p.detail.args;
                out.push(build(
                    Some(p.half),
                    Some(half),
                    false,
                    status,
                    error,
                    L7Detail::Redis(detail),
                ));
            }
            None => out.push(build(
                None,
                Some(half),
                false,
                status,
                error,
                L7Detail::Redis(detail),
            )),
        }
        self.drain_unanswered(out);
    }

    fn run(&mut self, dir: Direction, out: &mut Vec<L7Exchange>) {
        loop {
            let reader = match dir {
                Direction::ClientToServer => &mut self.client,
                Direction::ServerToClient => &mut self.server,
            };
            let step = reader.step();
            self.stats.skipped_bytes += reader.take_skipped();
            match step {
                Step::Wait => return,
                Step::Progress => {}
                Step::Done(v) => match dir {
                    Direction::ClientToServer => self.on_command(v, out),
                    Direction::ServerToClient => self.on_reply(v, out),
                },
            }
        }
    }
}

/// Short outcome: the error code word of an error reply ("ERR", "WRONGTYPE", "MOVED"), else OK.
fn outcome(v: &Value) -> (Option<String>, bool) {
    if v.kind.contains("error") {
        let text = v.text.as_deref().unwrap_or("");
        let code = text.split_whitespace().next().unwrap_or("ERR");
        (Some(code.to_string()), true)
    } else {
        (Some("OK".to_string()), false)
    }
}

impl ProtocolParser for RedisParser {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Redis
    }

    fn feed(&mut self, dir: Direction, ts_ns: u64, data: &[u8], out: &mut Vec<L7Exchange>) {
        // Bounded slices keep the buffer within about two lines whatever the chunk size.
        for piece in data.chunks(self.cfg.max_line.max(16)) {
            let reader = match dir {
                Direction::ClientToServer => &mut self.client,
                Direction::ServerToClient => &mut self.server,
            };
            reader.buf.push(ts_ns, piece);
            self.run(dir, out);
        }
    }

    fn gap(&mut self, dir: Direction, len: u64) {
        self.stats.gap_bytes += len;
        let reader = match dir {
            Direction::ClientToServer => &mut self.client,
            Direction::ServerToClient => &mut self.server,
        };
        self.stats.skipped_bytes += reader.buf.len() as u64;
        reader.reset();
        if dir == Direction::ServerToClient {
            // Replies were lost: the queue can no longer be paired in order. The commands
            // stay queued and come out as request-only at `finish` unless replies arrive, but
            // nothing tells how many were answered in the gap, so start afresh.
            self.pending.iter_mut().for_each(|p| p.no_reply = true);
        }
    }

    fn finish(&mut self, _ts_ns: u64, out: &mut Vec<L7Exchange>) {
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            let reader = match dir {
                Direction::ClientToServer => &mut self.client,
                Direction::ServerToClient => &mut self.server,
            };
            // An unfinished value is not a message: its bytes could not be used.
            if reader.in_progress() || !reader.buf.is_empty() {
                self.stats.skipped_bytes += reader.buf.len() as u64;
            }
            reader.reset();
        }
        while let Some(p) = self.pending.pop_front() {
            self.emit_request_only(p, out);
        }
    }

    fn stats(&self) -> ParserStats {
        self.stats
    }
}
