//! PostgreSQL frontend/backend protocol (v3).
//!
//! Exchanges, each closed by what the protocol says ends it:
//! - `ssl_request` / `gssenc_request`: the request and the server's one-byte answer; after an
//!   accepting answer the connection is encrypted and nothing more is parsed;
//! - `startup`: StartupMessage plus the client's password/SASL messages, answered by the
//!   authentication exchange up to ReadyForQuery (`auth_outcome` "ok") or an ErrorResponse
//!   ("failed");
//! - `query`: a simple Query up to ReadyForQuery, with every CommandComplete tag and the
//!   DataRow count;
//! - `extended_query`: Parse/Bind/Describe/Execute/Close up to and including Sync, answered up
//!   to ReadyForQuery; the statement text comes from Parse, or from the earlier Parse of the
//!   prepared statement that Bind names;
//! - `function_call`; and one-way messages: `terminate`, `cancel_request`, `notification`.
//!
//! Requests queue and ReadyForQuery closes the oldest, so pipelined batches pair in order.

mod decode;
mod detect;
mod frame;

pub use detect::detect;

use std::collections::{HashMap, VecDeque};

use fathom_model::l7::postgres::PostgresMessage;
use fathom_model::l7::{L7Detail, L7Exchange, L7Protocol};

use crate::parser::{Direction, ParserStats, ProtocolParser};
use crate::wire::{build, lossy, Half, StreamBuf};
use frame::{Frame, Kind, Next};

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct PostgresConfig {
    /// Bytes of one message kept for decoding; longer messages (big rows, huge statements)
    /// are decoded from their first `max_message` bytes and the rest passes unbuffered.
    pub max_message: usize,
    /// Requests waiting for ReadyForQuery; beyond this the oldest is reported as request-only.
    pub max_pending: usize,
    /// Bytes kept of statement texts and error messages.
    pub max_text: usize,
    /// Prepared statements remembered (name → text) to name what a Bind executes.
    pub max_prepared: usize,
    /// CommandComplete tags kept per exchange.
    pub max_tags: usize,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            max_message: 64 * 1024,
            max_pending: 1024,
            max_text: 4096,
            max_prepared: 256,
            max_tags: 16,
        }
    }
}

/// A request being answered.
#[derive(Debug)]
struct Pending {
    req: Option<Half>,
    resp: Option<Half>,
    msg: PostgresMessage,
    /// An extended-query batch still accepting messages (no Sync yet).
    open: bool,
    failed: bool,
}

impl Pending {
    fn new(kind: &str, req: Option<Half>) -> Self {
        Pending {
            req,
            resp: None,
            msg: PostgresMessage {
                kind: kind.to_string(),
                ..PostgresMessage::default()
            },
            open: false,
            failed: false,
        }
    }
}

/// One direction's reader state.
#[derive(Debug, Default)]
struct Side {
    buf: StreamBuf,
    /// After a gap (or a mid-stream start that did not parse): accept a message only if the
    /// next one's type byte follows it, to avoid locking onto bytes inside a message.
    resync: bool,
}

pub struct PostgresParser {
    cfg: PostgresConfig,
    front: Side,
    back: Side,
    /// The frontend is still in the untyped startup phase.
    startup_phase: bool,
    /// The backend owes a one-byte answer to SSLRequest/GSSENCRequest.
    expect_answer: bool,
    /// TLS/GSS encryption accepted: the rest of the connection is opaque.
    encrypted: bool,
    pending: VecDeque<Pending>,
    /// Backend messages seen without a request (mid-stream pickup), reported at ReadyForQuery.
    orphan: Option<Pending>,
    prepared: HashMap<String, String>,
    stats: ParserStats,
}

impl Default for PostgresParser {
    fn default() -> Self {
        Self::new()
    }
}

impl PostgresParser {
    pub fn new() -> Self {
        Self::with_config(PostgresConfig::default())
    }

    pub fn with_config(cfg: PostgresConfig) -> Self {
        PostgresParser {
            cfg,
            front: Side::default(),
            back: Side::default(),
            startup_phase: true,
            expect_answer: false,
            encrypted: false,
            pending: VecDeque::new(),
            orphan: None,
            prepared: HashMap::new(),
            stats: ParserStats::default(),
        }
    }

    fn run(&mut self, backend: bool, out: &mut Vec<L7Exchange>) {
        loop {
            if self.encrypted {
                let side = if backend {
                    &mut self.back
                } else {
                    &mut self.front
                };
                // Opaque TLS records: understood, not parsed, so not counted as skipped.
                side.buf.clear();
                return;
            }
            if backend && self.expect_answer {
                let Some(&b) = self.back.buf.data().first() else {
                    return;
                };
                if matches!(b, b'S' | b'N' | b'G') {
                    let ts = self.back.buf.ts();
                    self.back.buf.consume(1);
                    self.expect_answer = false;
                    self.on_answer(b, ts, out);
                    continue;
                }
                // Old servers answer SSLRequest with an ErrorResponse: parse it normally.
                self.expect_answer = false;
            }
            let untyped = !backend && self.startup_phase;
            let max = self.cfg.max_message.max(64);
            let side = if backend {
                &mut self.back
            } else {
                &mut self.front
            };
            let next = frame::next(&side.buf, backend, untyped, max);
            let f = match next {
                Next::Wait => return,
                Next::Garbage => {
                    if untyped {
                        // Not a startup message: the connection was picked up after
                        // startup; the client's bytes are typed messages.
                        self.startup_phase = false;
                        continue;
                    }
                    side.buf.consume(1);
                    side.resync = true;
                    self.stats.skipped_bytes += 1;
                    continue;
                }
                Next::Frame(f) => f,
            };
            if side.resync && !untyped {
                // Confirm the boundary: the next message must start with a valid type byte.
                let after = f.total as usize;
                if f.truncated {
                    // A huge message right after a gap is more likely a misread length.
                    side.buf.consume(1);
                    self.stats.skipped_bytes += 1;
                    continue;
                } else {
                    match side.buf.data().get(after) {
                        None => return,
                        Some(&t) if frame::is_type(backend, t) => side.resync = false,
                        Some(_) => {
                            side.buf.consume(1);
                            self.stats.skipped_bytes += 1;
                            continue;
                        }
                    }
                }
            }
            side.buf.skip_message(f.total);
            if backend {
                self.on_backend(f, out);
            } else {
                self.on_frontend(f, out);
            }
        }
    }

    fn push_pending(&mut self, p: Pending, out: &mut Vec<L7Exchange>) {
        if self.pending.len() >= self.cfg.max_pending.max(1) {
            if let Some(old) = self.pending.pop_front() {
                self.stats.overflow_bytes += old.req.map_or(0, |h| h.bytes);
                self.emit(old, out);
            }
        }
        self.pending.push_back(p);
    }

    fn on_frontend(&mut self, f: Frame, out: &mut Vec<L7Exchange>) {
        let half = Half::new(f.ts, f.total);
        let max_text = self.cfg.max_text;
        match f.kind {
            Kind::Untyped(frame::SSL_REQUEST) | Kind::Untyped(frame::GSSENC_REQUEST) => {
                let kind = if f.kind == Kind::Untyped(frame::SSL_REQUEST) {
                    "ssl_request"
                } else {
                    "gssenc_request"
                };
                self.expect_answer = true;
                self.push_pending(Pending::new(kind, Some(half)), out);
            }
            Kind::Untyped(frame::CANCEL_REQUEST) => {
                let p = Pending::new("cancel_request", Some(half));
                self.stats.records += 1;
                out.push(build(
                    Some(half),
                    None,
                    true,
                    None,
                    false,
                    L7Detail::Postgres(p.msg),
                ));
            }
            Kind::Untyped(_) => {
                self.startup_phase = false;
                let s = decode::startup(&f.body, max_text);
                let mut p = Pending::new("startup", Some(half));
                p.msg.user = s.user;
                p.msg.database = s.database;
                p.msg.application_name = s.application_name;
                self.push_pending(p, out);
            }
            Kind::Typed(t) => self.on_frontend_typed(t, f, half, out),
        }
    }

    fn on_frontend_typed(&mut self, t: u8, f: Frame, half: Half, out: &mut Vec<L7Exchange>) {
        let max_text = self.cfg.max_text;
        match t {
            b'Q' => {
                let mut p = Pending::new("query", Some(half));
                p.msg.statement = Some(decode::query_text(&f.body, max_text));
                p.msg.rows = Some(0);
                self.push_pending(p, out);
            }
            b'P' | b'B' | b'E' | b'D' | b'C' | b'H' | b'S' => {
                let statement = match t {
                    b'P' => decode::parse_msg(&f.body, max_text).map(|(name, text)| {
                        if self.prepared.len() < self.cfg.max_prepared
                            || self.prepared.contains_key(&name)
                        {
                            self.prepared.insert(name, text.clone());
                        }
                        text
                    }),
                    b'B' => {
                        decode::bind_statement(&f.body).and_then(|n| self.prepared.get(&n).cloned())
                    }
                    _ => None,
                };
                if !self.pending.back().is_some_and(|p| p.open) {
                    let mut p = Pending::new("extended_query", Some(Half::new(f.ts, 0)));
                    p.open = true;
                    p.msg.rows = Some(0);
                    self.push_pending(p, out);
                }
                if let Some(p) = self.pending.back_mut() {
                    if let Some(h) = p.req.as_mut() {
                        h.bytes += half.bytes;
                    }
                    if p.msg.statement.is_none() {
                        p.msg.statement = statement;
                    }
                    if t == b'S' {
                        p.open = false;
                    }
                }
            }
            b'X' => {
                let p = Pending::new("terminate", Some(half));
                self.stats.records += 1;
                out.push(build(
                    Some(half),
                    None,
                    true,
                    None,
                    false,
                    L7Detail::Postgres(p.msg),
                ));
            }
            b'F' => {
                let mut p = Pending::new("function_call", Some(half));
                p.msg.rows = Some(0);
                self.push_pending(p, out);
            }
            // Password/SASL messages (startup), COPY data from the client: part of the
            // request being answered.
            _ => {
                if let Some(h) = self.pending.back_mut().and_then(|p| p.req.as_mut()) {
                    h.bytes += half.bytes;
                }
            }
        }
    }

    fn on_answer(&mut self, b: u8, ts: u64, out: &mut Vec<L7Exchange>) {
        let accepted = b != b'N';
        let Some(mut p) = self.pending.pop_front() else {
            return;
        };
        p.resp = Some(Half::new(ts, 1));
        p.msg.ssl_accepted = Some(accepted);
        let status = (b as char).to_string();
        self.stats.records += 1;
        out.push(build(
            p.req,
            p.resp,
            false,
            Some(status),
            false,
            L7Detail::Postgres(p.msg),
        ));
        if accepted {
            self.encrypted = true;
        }
    }

    /// The request that backend messages belong to: the oldest pending one, or an orphan
    /// collecting a response whose request was not seen.
    fn current(&mut self) -> &mut Pending {
        if self.pending.is_empty() {
            self.orphan
                .get_or_insert_with(|| Pending::new("query", None))
        } else {
            &mut self.pending[0]
        }
    }

    fn on_backend(&mut self, f: Frame, out: &mut Vec<L7Exchange>) {
        let Kind::Typed(t) = f.kind else { return };
        if t == b'A' {
            let mut p = Pending::new("notification", None);
            p.msg.channel = decode::notification_channel(&f.body);
            self.stats.records += 1;
            let h = Half::new(f.ts, f.total);
            out.push(build(
                None,
                Some(h),
                true,
                None,
                false,
                L7Detail::Postgres(p.msg),
            ));
            return;
        }
        let max_text = self.cfg.max_text;
        let max_tags = self.cfg.max_tags;
        let cur = self.current();
        match cur.resp.as_mut() {
            Some(h) => h.bytes += f.total,
            None => cur.resp = Some(Half::new(f.ts, f.total)),
        }
        let mut done = false;
        match t {
            b'R' => {
                cur.msg.kind = "startup".to_string();
                let code = f
                    .body
                    .get(..4)
                    .map_or(u32::MAX, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                match decode::auth_method(code) {
                    None => cur.msg.auth_outcome = Some("ok".to_string()),
                    Some(m) => {
                        cur.msg.auth_method.get_or_insert_with(|| m.to_string());
                    }
                }
            }
            b'E' => {
                let e = decode::error_fields(&f.body, max_text);
                cur.failed = true;
                cur.msg.error_code = e.code;
                cur.msg.error_message = e.message;
                if cur.msg.kind == "startup" {
                    cur.msg.auth_outcome = Some("failed".to_string());
                }
                // After FATAL/PANIC the server closes the connection: no ReadyForQuery.
                done = matches!(e.severity.as_deref(), Some("FATAL") | Some("PANIC"));
            }
            b'D' => cur.msg.rows = Some(cur.msg.rows.unwrap_or(0) + 1),
            b'C' => {
                let end = f.body.iter().position(|&b| b == 0).unwrap_or(f.body.len());
                let tag = lossy(&f.body[..end], 64);
                if let Some(n) = decode::affected_rows(&tag) {
                    cur.msg.affected_rows = Some(cur.msg.affected_rows.unwrap_or(0) + n);
                }
                if cur.msg.command_tags.len() < max_tags {
                    cur.msg.command_tags.push(tag);
                }
                cur.msg.rows.get_or_insert(0);
            }
            b'Z' => done = true,
            _ => {}
        }
        if done {
            if self.pending.is_empty() {
                if let Some(p) = self.orphan.take() {
                    self.emit(p, out);
                }
            } else if let Some(p) = self.pending.pop_front() {
                self.emit(p, out);
            }
        }
    }

    fn emit(&mut self, p: Pending, out: &mut Vec<L7Exchange>) {
        let status = match (&p.msg.error_code, p.resp) {
            (Some(code), _) => Some(code.clone()),
            (None, Some(_)) if p.failed => Some("ERROR".to_string()),
            // A startup cut short (no AuthenticationOk) has no outcome yet.
            (None, Some(_)) if p.msg.kind == "startup" && p.msg.auth_outcome.is_none() => None,
            (None, Some(_)) => Some("OK".to_string()),
            (None, None) => None,
        };
        self.stats.records += 1;
        out.push(build(
            p.req,
            p.resp,
            false,
            status,
            p.failed,
            L7Detail::Postgres(p.msg),
        ));
    }
}

impl ProtocolParser for PostgresParser {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Postgres
    }

    fn feed(&mut self, dir: Direction, ts_ns: u64, data: &[u8], out: &mut Vec<L7Exchange>) {
        let backend = dir == Direction::ServerToClient;
        // Bounded slices keep the buffer near one message whatever the chunk size.
        for piece in data.chunks(self.cfg.max_message.max(64)) {
            let side = if backend {
                &mut self.back
            } else {
                &mut self.front
            };
            side.buf.push(ts_ns, piece);
            self.run(backend, out);
        }
    }

    fn gap(&mut self, dir: Direction, len: u64) {
        self.stats.gap_bytes += len;
        let backend = dir == Direction::ServerToClient;
        let side = if backend {
            &mut self.back
        } else {
            &mut self.front
        };
        self.stats.skipped_bytes += side.buf.clear() as u64;
        side.resync = true;
        if !backend {
            self.startup_phase = false;
        }
    }

    fn finish(&mut self, _ts_ns: u64, out: &mut Vec<L7Exchange>) {
        // Messages held back only to confirm a boundary after a gap: nothing follows them.
        for backend in [false, true] {
            let side = if backend {
                &mut self.back
            } else {
                &mut self.front
            };
            if side.resync {
                side.resync = false;
                self.run(backend, out);
            }
        }
        for side in [&mut self.front, &mut self.back] {
            if !self.encrypted {
                self.stats.skipped_bytes += side.buf.len() as u64;
            }
            side.buf.clear();
        }
        while let Some(p) = self.pending.pop_front() {
            self.emit(p, out);
        }
        if let Some(p) = self.orphan.take() {
            self.emit(p, out);
        }
    }

    fn stats(&self) -> ParserStats {
        self.stats
    }
}
