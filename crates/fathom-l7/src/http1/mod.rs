//! HTTP/1.x: request/response pairing over one connection, incremental in both directions.
//!
//! Each direction has a reader (a small state machine: idle → head → body → idle) fed with
//! arbitrary chunks. Requests queue up (pipelining) and each final response completes the
//! oldest one. Special cases handled: HEAD and 204/304 (no body), 1xx interim responses,
//! chunked bodies with trailers, close-delimited responses, HTTP/0.9, `Connection: close`,
//! CONNECT and `Upgrade` (the rest of the connection is handed to a tunnel: HTTP/2 for h2c,
//! protocol inference for CONNECT, opaque otherwise).
//!
//! Malformed input never stops the connection: the reader counts the bytes it skips and
//! resynchronises at the next line that starts like a message. Capture gaps inside a
//! length-delimited body keep the framing; elsewhere they trigger the same resync.

pub mod framing;
mod headbuf;

use std::collections::VecDeque;

use fathom_model::l7::http::HttpExchange;
use fathom_model::l7::{ExchangeKind, L7Detail, L7Exchange, L7Protocol};
use fathom_model::Timestamp;

use crate::parser::{Detection, Direction, ParserStats, ProtocolParser};
use framing::{BodyLen, ChunkStep, Chunked, Head, Role};
use headbuf::HeadBuf;

/// Request methods recognised when detecting and resynchronising (IANA registry, plus the
/// WebDAV/UPnP ones llhttp knows). `PRI` is left out on purpose: it is the HTTP/2 preface.
pub const METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    "COPY",
    "LOCK",
    "MKCOL",
    "MOVE",
    "PROPFIND",
    "PROPPATCH",
    "SEARCH",
    "UNLOCK",
    "BIND",
    "REBIND",
    "UNBIND",
    "ACL",
    "REPORT",
    "MKACTIVITY",
    "CHECKOUT",
    "MERGE",
    "M-SEARCH",
    "NOTIFY",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "PURGE",
    "MKCALENDAR",
    "LINK",
    "UNLINK",
    "SOURCE",
    "QUERY",
];

pub fn is_method(m: &[u8]) -> bool {
    METHODS.iter().any(|k| k.as_bytes() == m)
}

/// Whether an HTTP status counts as failed for `L7Exchange::error` (client and server errors).
pub fn status_is_error(status: u16) -> bool {
    status >= 400
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartMatch {
    Yes,
    Prefix,
    No,
}

/// Does `b` start like a request (`METHOD SP`) or a response (`HTTP/1.x SP`)?
fn starts_message(role: Role, b: &[u8]) -> StartMatch {
    match role {
        Role::Request => {
            let mut prefix = false;
            for m in METHODS {
                let m = m.as_bytes();
                if b.len() > m.len() {
                    if b.starts_with(m) && b[m.len()] == b' ' {
                        return StartMatch::Yes;
                    }
                } else if m.starts_with(b) {
                    prefix = true;
                }
            }
            if prefix {
                StartMatch::Prefix
            } else {
                StartMatch::No
            }
        }
        Role::Response => {
            const P: &[u8] = b"HTTP/1.";
            if b.len() < P.len() + 2 {
                let n = b.len().min(P.len());
                let ok =
                    P.starts_with(&b[..n]) && (b.len() <= P.len() || b[P.len()].is_ascii_digit());
                return if ok {
                    StartMatch::Prefix
                } else {
                    StartMatch::No
                };
            }
            if b.starts_with(P) && b[P.len()].is_ascii_digit() && b[P.len() + 1] == b' ' {
                StartMatch::Yes
            } else {
                StartMatch::No
            }
        }
    }
}

/// Protocol inference hook: a request line from the client, or a status line from the server
/// (mid-stream pickup).
pub fn detect(dir: Direction, data: &[u8]) -> Detection {
    let role = match dir {
        Direction::ClientToServer => Role::Request,
        Direction::ServerToClient => Role::Response,
    };
    match starts_message(role, data) {
        StartMatch::Yes => Detection::Match,
        StartMatch::Prefix => Detection::NeedMore,
        StartMatch::No => Detection::NoMatch,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http1Limits {
    /// Longest head (request/status line and headers) accepted; longer ones are skipped.
    pub max_head_bytes: usize,
    /// Requests waiting for their response (pipelining); the oldest is reported request-only
    /// when more arrive.
    pub max_pending: usize,
    /// Client bytes held while waiting to learn whether an Upgrade/CONNECT was accepted.
    pub max_stash_bytes: usize,
    /// Read request lines the way servers and Zeek tolerate them (extra spaces, empty
    /// target). A passive observer must report what the server accepted; conformance tests
    /// turn this off to compare with llhttp's strict default.
    pub lenient: bool,
}

impl Default for Http1Limits {
    fn default() -> Self {
        Http1Limits {
            max_head_bytes: 64 * 1024,
            max_pending: 64,
            max_stash_bytes: 256 * 1024,
            lenient: true,
        }
    }
}

/// A message as seen on the wire, for conformance tests (`parse_stream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedMessage {
    pub head: Head,
    pub complete: bool,
    pub body_bytes: u64,
}

#[derive(Debug, Clone)]
struct Msg {
    ts: u64,
    head: Head,
    bytes: u64,
    body_bytes: u64,
    log_index: Option<usize>,
    /// A response whose head arrived while no request was waiting: it answers nothing this
    /// capture saw, even if a request arrives before its body ends.
    unsolicited: bool,
}

#[derive(Debug, Clone)]
enum Body {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

#[derive(Debug, Clone)]
enum State {
    Idle,
    Head,
    Body(Body),
    /// Lost sync: skipping to the next line that starts a message.
    Resync,
    /// Request side after an Upgrade/CONNECT request: hold bytes until the response decides.
    Stash,
    /// The connection switched protocols; bytes go to the tunnel.
    Tunnel,
    /// `Connection: close` was honoured; anything after it is junk.
    Closed,
}

#[derive(Debug)]
struct Reader {
    role: Role,
    state: State,
    /// Head bytes being accumulated, or a partial message start while resynchronising.
    buf: HeadBuf,
    head_ts: u64,
    msg: Option<Msg>,
    /// Whether the next byte starts a line (for resync).
    line_start: bool,
    /// The head's first bytes were confirmed to start a message.
    start_ok: bool,
    /// Strict mode: head bytes before this offset were validated line by line.
    checked: usize,
}

impl Reader {
    fn new(role: Role) -> Self {
        Reader {
            role,
            state: State::Idle,
            buf: HeadBuf::default(),
            head_ts: 0,
            msg: None,
            line_start: true,
            start_ok: false,
            checked: 0,
        }
    }
}

struct PendingReq {
    ts: u64,
    head: Head,
    bytes: u64,
    body_bytes: u64,
    /// Upgrade or CONNECT: the response decides whether the connection switches.
    switch_candidate: bool,
}

enum Tunnel {
    Parser(Box<dyn ProtocolParser>),
    /// Carried bytes are deliberately not parsed (WebSocket, unknown upgrades).
    Opaque,
}

pub struct Http1Parser {
    limits: Http1Limits,
    req: Reader,
    resp: Reader,
    pending: VecDeque<PendingReq>,
    stash: Vec<u8>,
    stash_ts: u64,
    tunnel: Option<Tunnel>,
    stats: ParserStats,
    /// Bytes carried by an opaque tunnel (WebSocket, unknown upgrade).
    opaque_bytes: u64,
    log: Option<Vec<LoggedMessage>>,
    first_error: Option<String>,
    /// Method assumed for responses whose request was not seen (standalone parsing).
    assume_method: Option<String>,
}

impl Default for Http1Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Http1Parser {
    pub fn new() -> Self {
        Self::with_limits(Http1Limits::default())
    }

    pub fn with_limits(limits: Http1Limits) -> Self {
        Http1Parser {
            limits,
            req: Reader::new(Role::Request),
            resp: Reader::new(Role::Response),
            pending: VecDeque::new(),
            stash: Vec::new(),
            stash_ts: 0,
            tunnel: None,
            stats: ParserStats::default(),
            opaque_bytes: 0,
            log: None,
            first_error: None,
            assume_method: None,
        }
    }

    /// Bytes that went through an opaque tunnel (WebSocket and other upgrades).
    pub fn opaque_bytes(&self) -> u64 {
        self.opaque_bytes
    }

    fn reader(&mut self, dir: Direction) -> &mut Reader {
        match dir {
            Direction::ClientToServer => &mut self.req,
            Direction::ServerToClient => &mut self.resp,
        }
    }

    fn error(&mut self, dir: Direction, skipped: u64, why: String) {
        self.stats.skipped_bytes += skipped;
        if self.first_error.is_none() {
            self.first_error = Some(why);
        }
        let r = self.reader(dir);
        r.state = State::Resync;
        r.msg = None;
        r.buf.clear();
        r.line_start = false;
    }

    fn run(&mut self, dir: Direction, ts: u64, data: &[u8], out: &mut Vec<L7Exchange>) {
        let mut pos = 0;
        while pos < data.len() {
            let rest = &data[pos..];
            let state = std::mem::replace(&mut self.reader(dir).state, State::Idle);
            match state {
                State::Idle => {
                    let skip = rest
                        .iter()
                        .take_while(|b| **b == b'\r' || **b == b'\n')
                        .count();
                    pos += skip;
                    if pos < data.len() {
                        self.start_message(dir, ts, &data[pos..], out);
                    }
                }
                State::Head => {
                    self.reader(dir).state = State::Head;
                    pos += self.head_bytes(dir, ts, rest, out);
                }
                State::Body(body) => {
                    pos += self.body_bytes(dir, ts, body, rest, out);
                }
                State::Resync => {
                    let (used, restart) = self.resync(dir, rest);
                    pos += used;
                    if let Some(carry) = restart {
                        // The message start straddled chunks: parse the carried bytes first.
                        self.run(dir, ts, &carry, out);
                    }
                }
                State::Stash => {
                    self.req.state = State::Stash;
                    if self.stash.is_empty() {
                        self.stash_ts = ts;
                    }
                    let room = self.limits.max_stash_bytes.saturating_sub(self.stash.len());
                    let keep = rest.len().min(room);
                    self.stash.extend_from_slice(&rest[..keep]);
                    self.stats.overflow_bytes += (rest.len() - keep) as u64;
                    pos = data.len();
                }
                State::Tunnel => {
                    self.reader(dir).state = State::Tunnel;
                    match &mut self.tunnel {
                        Some(Tunnel::Parser(p)) => p.feed(dir, ts, rest, out),
                        _ => self.opaque_bytes += rest.len() as u64,
                    }
                    pos = data.len();
                }
                State::Closed => {
                    self.reader(dir).state = State::Closed;
                    // Stray line ends after the last message are harmless.
                    let junk = rest.iter().filter(|b| **b != b'\r' && **b != b'\n').count();
                    if junk > 0 {
                        self.stats.skipped_bytes += rest.len() as u64;
                        if self.first_error.is_none() {
                            self.first_error = Some("data after Connection: close".into());
                        }
                    }
                    pos = data.len();
                }
            }
        }
    }

    /// A lone HTTP/0.9 request line still waiting for more bytes is complete once the server
    /// answers (or the connection ends): 0.9 clients send nothing else.
    fn settle_http09(&mut self, out: &mut Vec<L7Exchange>) {
        if !matches!(self.req.state, State::Head) || !self.pending.is_empty() {
            return;
        }
        // The cached scan first: this runs at every response start.
        if self.req.buf.http09_end().is_none() {
            return;
        }
        let Some((head, n)) = framing::http09_request(&self.req.buf) else {
            return;
        };
        if self.req.buf[n..].iter().any(|b| *b != b'\r' && *b != b'\n') {
            return;
        }
        let len = self.req.buf.len() as u64;
        self.req.buf.clear();
        let ts = self.req.head_ts;
        self.on_head(Direction::ClientToServer, ts, head, len, out);
    }

    fn start_message(&mut self, dir: Direction, ts: u64, rest: &[u8], out: &mut Vec<L7Exchange>) {
        if dir == Direction::ServerToClient {
            self.settle_http09(out);
        }
        // A 0.9 request gets a bare body as its response: no status line to wait for.
        if dir == Direction::ServerToClient
            && self.pending.front().is_some_and(|p| p.head.is_http09())
        {
            let head = Head {
                version: "HTTP/0.9".into(),
                ..Default::default()
            };
            let log_index = self.log_head(&head);
            self.resp.msg = Some(Msg {
                ts,
                head,
                bytes: 0,
                body_bytes: 0,
                log_index,
                unsolicited: false,
            });
            self.resp.state = State::Body(Body::UntilClose);
            return;
        }
        let r = self.reader(dir);
        r.buf.clear();
        if starts_message(r.role, rest) == StartMatch::No {
            // Not a message start: skip to the next line that is one, instead of swallowing
            // a good message into a bad head.
            r.state = State::Resync;
            r.line_start = true;
            if self.first_error.is_none() {
                self.first_error = Some("invalid message start".into());
            }
            return;
        }
        r.head_ts = ts;
        r.state = State::Head;
        r.start_ok = false;
        r.checked = 0;
    }

    /// Leave a head that turned out not to be a message: its bytes go back to resync, which
    /// skips them up to the next line that starts a message.
    /// `fresh` is how many of the buffered bytes came with the current chunk; those after
    /// `from` are handed back (returned) to be rescanned from the caller's input, so that
    /// nothing waits for a next chunk that may never come.
    fn abandon_head(
        &mut self,
        dir: Direction,
        from: usize,
        line_start: bool,
        why: String,
        fresh: usize,
    ) -> usize {
        if self.first_error.is_none() {
            self.first_error = Some(why);
        }
        let r = self.reader(dir);
        let mut carry = r.buf.split_off(from);
        let skipped = r.buf.len() as u64;
        let give_back = carry.len().min(fresh);
        carry.truncate(carry.len() - give_back);
        r.buf.set(carry);
        r.state = State::Resync;
        r.msg = None;
        r.line_start = line_start;
        self.stats.skipped_bytes += skipped;
        give_back
    }

    /// Strict mode (llhttp's rules): the head so far must be valid line by line, so that bad
    /// input is rejected where llhttp rejects it, even if the head never ends. Returns the
    /// start of the first bad line. Lines are judged in order, so the answer does not depend
    /// on how the stream was chunked.
    /// A head found whole and clean is left in `clean` with its length (parsed without the
    /// headers kept), so that the caller need not parse it again.
    fn strict_check(
        &mut self,
        dir: Direction,
        clean: &mut Option<(usize, Head)>,
    ) -> Option<(usize, String)> {
        let r = self.reader(dir);
        let role = r.role;
        // Each header line is probed as the end of a head (below) to name the first bad one.
        // When the whole head is here and parses clean, every probe would pass (httparse
        // judges line by line, and a framing error once set is never cleared by later
        // headers): one parse instead of one per line, and only the line checks remain.
        let from = r.checked.saturating_sub(2);
        *clean = memchr::memmem::find(&r.buf[from..], b"\r\n\r\n").and_then(|p| {
            let end = from + p + 4;
            match framing::parse_head(role, &r.buf[..end], false, false) {
                Ok(h) if h.framing_error.is_none() => Some((end, h)),
                _ => None,
            }
        });
        let probe = clean.is_none();
        while let Some(nl) = r.buf[r.checked..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| r.checked + p)
        {
            let start = r.checked;
            let line = &r.buf[start..nl];
            let end = nl + 1;
            if line.last() != Some(&b'\r') || line[..line.len().saturating_sub(1)].contains(&b'\r')
            {
                return Some((start, "line not ended by CRLF".into()));
            }
            if line.len() == 1 {
                // Blank line: the head is complete; parse_head judges the whole.
                r.checked = end;
                return None;
            }
            if start > 0 && matches!(line.first(), Some(b' ') | Some(b'\t')) {
                return Some((start, "whitespace at the start of a header line".into()));
            }
            if !probe {
                r.checked = end;
                continue;
            }
            let mut probe = r.buf[..end].to_vec();
            probe.extend_from_slice(b"\r\n");
            match framing::parse_head(role, &probe, false, false) {
                Ok(h) if h.framing_error.is_some() => {
                    return Some((start, h.framing_error.unwrap_or_default().into()));
                }
                Ok(_) => {}
                // A request line without version is HTTP/0.9, handled by the caller.
                Err(_)
                    if role == Role::Request
                        && start == 0
                        && framing::http09_request(&probe).is_some() => {}
                Err(e) => return Some((start, e.to_string())),
            }
            r.checked = end;
        }
        let start = r.checked;
        let tail = &r.buf[start..];
        if start > 0 && matches!(tail.first(), Some(b' ') | Some(b'\t')) {
            return Some((start, "whitespace at the start of a header line".into()));
        }
        if let Some(p) = tail.iter().position(|b| *b == b'\r') {
            if tail.get(p + 1).is_some_and(|b| *b != b'\n') {
                return Some((start, "CR not followed by LF".into()));
            }
        }
        let tail_ok = framing::valid_prefix(role, &r.buf);
        if let Err(e) = tail_ok {
            // An HTTP/0.9 request line (complete, or still arriving) has no version.
            let is_09 = role == Role::Request
                && (r.buf.http09_end().is_some()
                    || (!r.buf.contains(&b'\n') && r.buf.split(|b| *b == b' ').count() <= 2));
            if !is_09 {
                return Some((start, e));
            }
        }
        None
    }

    fn log_head(&mut self, head: &Head) -> Option<usize> {
        let log = self.log.as_mut()?;
        log.push(LoggedMessage {
            head: head.clone(),
            complete: false,
            body_bytes: 0,
        });
        Some(log.len() - 1)
    }

    /// Accumulate head bytes; returns how many of `rest` were used.
    fn head_bytes(
        &mut self,
        dir: Direction,
        ts: u64,
        rest: &[u8],
        out: &mut Vec<L7Exchange>,
    ) -> usize {
        let max = self.limits.max_head_bytes;
        let keep = self.log.is_some();
        let lenient = self.limits.lenient;
        let r = self.reader(dir);
        let before = r.buf.len();
        // Copy only up to the end of the head when it is in this chunk: the rest of a large
        // chunk (bodies, pipelined messages) is not this head's business.
        let limit = framing::head_end_across(&r.buf, rest).unwrap_or(rest.len());
        let take = limit.min(max + 1 - before.min(max));
        r.buf.extend_from_slice(&rest[..take]);
        if !r.start_ok {
            // Decide "is this a message start?" on the accumulated bytes, so that the answer
            // does not depend on how the stream was chunked.
            match starts_message(r.role, &r.buf) {
                StartMatch::Yes => r.start_ok = true,
                StartMatch::Prefix => {}
                StartMatch::No => {
                    return take
                        - self.abandon_head(dir, 0, true, "invalid message start".into(), take);
                }
            }
        }
        let mut clean = None;
        if !lenient {
            if let Some((at, why)) = self.strict_check(dir, &mut clean) {
                // The bad line itself is skipped; resync looks from the next line on.
                return take - self.abandon_head(dir, at, false, why, take);
            }
        }
        let r = self.reader(dir);
        let mut end = framing::find_head_end(&r.buf, before);
        if end.is_none() && r.role == Role::Request {
            // HTTP/0.9: the request is a single line. It ends there when something other
            // than a line end follows; a blank line is taken as part of it (find_head_end),
            // and a line with nothing after it is settled when the server answers.
            if let Some(n) = r.buf.http09_end() {
                if r.buf.get(n).is_some_and(|b| *b != b'\r' && *b != b'\n') {
                    end = Some(n);
                }
            }
        }
        let Some(end) = end else {
            if r.buf.len() > max {
                let n = r.buf.len() as u64;
                self.error(dir, n, format!("head longer than {max} bytes"));
            }
            return take;
        };
        let used = end - before;
        let buf = r.buf.take();
        let head_ts = r.head_ts;
        let whole = match clean {
            Some((len, h)) if len == end && !keep => Ok(h),
            _ => framing::parse_head(r.role, &buf[..end], keep, lenient),
        };
        let parsed = match whole {
            Ok(h) => Ok(h),
            Err(e) => match (r.role, framing::http09_request(&buf[..end])) {
                (Role::Request, Some((h, n)))
                    if n == end || buf[n..end].iter().all(|b| *b == b'\r' || *b == b'\n') =>
                {
                    Ok(h)
                }
                _ => Err(e),
            },
        };
        match parsed {
            Ok(head) => self.on_head(dir, head_ts.min(ts), head, end as u64, out),
            Err(e) => self.error(dir, end as u64, e.to_string()),
        }
        used
    }

    fn on_head(
        &mut self,
        dir: Direction,
        ts: u64,
        head: Head,
        len: u64,
        out: &mut Vec<L7Exchange>,
    ) {
        match dir {
            Direction::ClientToServer => self.on_request_head(ts, head, len, out),
            Direction::ServerToClient => self.on_response_head(ts, head, len, out),
        }
    }

    fn on_request_head(&mut self, ts: u64, head: Head, len: u64, out: &mut Vec<L7Exchange>) {
        let body = match framing::request_body(&head) {
            Ok(b) => b,
            Err(e) => {
                // The request is real; only where its body ends is unknown.
                if self.first_error.is_none() {
                    self.first_error = Some(e.to_string());
                }
                BodyLen::Unknown
            }
        };
        let log_index = self.log_head(&head);
        if self.pending.len() >= self.limits.max_pending {
            if let Some(old) = self.pending.pop_front() {
                self.emit(Some(old), None, out);
            }
        }
        let switch_candidate = head.method.as_deref() == Some("CONNECT") || head.upgrade.is_some();
        self.pending.push_back(PendingReq {
            ts,
            head: head.clone(),
            bytes: len,
            body_bytes: 0,
            switch_candidate,
        });
        self.req.msg = Some(Msg {
            ts,
            head,
            bytes: len,
            body_bytes: 0,
            log_index,
            unsolicited: false,
        });
        self.begin_body(Direction::ClientToServer, ts, body, out);
    }

    fn on_response_head(&mut self, ts: u64, head: Head, len: u64, out: &mut Vec<L7Exchange>) {
        let status = head.status.unwrap_or(0);
        let method = match self.pending.front() {
            Some(p) => p.head.method.clone(),
            None => self.assume_method.clone(),
        };
        let log_index = self.log_head(&head);
        if (100..200).contains(&status) && status != 101 {
            // Interim response (100 Continue, 103 Early Hints): the final one follows.
            if let (Some(log), Some(i)) = (self.log.as_mut(), log_index) {
                log[i].complete = true;
            }
            self.resp.state = State::Idle;
            return;
        }
        let switching = matches!(
            (status, method.as_deref()),
            (101, _) | (200..=299, Some("CONNECT"))
        );
        // 101 switches whether or not we saw the request (mid-stream pickup); a CONNECT
        // tunnel needs the request to be known.
        if switching && (status == 101 || self.pending.front().is_some_and(|p| p.switch_candidate))
        {
            let upgrade = head.upgrade.clone();
            let is_connect = method.as_deref() == Some("CONNECT");
            if let (Some(log), Some(i)) = (self.log.as_mut(), log_index) {
                log[i].complete = true;
            }
            let req = self.pending.pop_front();
            let h2c = !is_connect
                && upgrade
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case("h2c"));
            let tunnel = if is_connect {
                self.emit(
                    req,
                    Some(Msg {
                        ts,
                        head,
                        bytes: len,
                        body_bytes: 0,
                        log_index,
                        unsolicited: false,
                    }),
                    out,
                );
                Tunnel::Parser(Box::new(crate::session::AutoParser::new(
                    crate::session::Transport::Tcp,
                    None,
                )))
            } else if h2c {
                // The 101 is interim: the response to the upgraded request comes on HTTP/2
                // stream 1, so the HTTP/2 parser reports that exchange, request included.
                let mut h2 = crate::http2::Http2Parser::after_upgrade();
                if let Some(q) = req {
                    let detail = http_detail(Some(&q.head), None, Some(q.body_bytes), None);
                    h2 = h2.with_upgrade_request(q.ts, detail);
                }
                Tunnel::Parser(Box::new(h2))
            } else {
                self.emit(
                    req,
                    Some(Msg {
                        ts,
                        head,
                        bytes: len,
                        body_bytes: 0,
                        log_index,
                        unsolicited: false,
                    }),
                    out,
                );
                Tunnel::Opaque
            };
            self.switch(tunnel, out);
            return;
        }
        let body = framing::response_body(&head, method.as_deref());
        let unsolicited = self.pending.is_empty();
        self.resp.msg = Some(Msg {
            ts,
            head,
            bytes: len,
            body_bytes: 0,
            log_index,
            unsolicited,
        });
        self.begin_body(Direction::ServerToClient, ts, body, out);
    }

    fn begin_body(&mut self, dir: Direction, ts: u64, body: BodyLen, out: &mut Vec<L7Exchange>) {
        let r = self.reader(dir);
        match body {
            BodyLen::None => self.complete(dir, ts, out),
            BodyLen::Length(n) => r.state = State::Body(Body::Length(n)),
            BodyLen::Chunked => r.state = State::Body(Body::Chunked(Chunked::new())),
            BodyLen::UntilClose => r.state = State::Body(Body::UntilClose),
            BodyLen::Unknown => {
                if self.first_error.is_none() {
                    self.first_error = Some("invalid framing headers".into());
                }
                self.complete(dir, ts, out);
                let r = self.reader(dir);
                r.state = State::Resync;
                // The head just ended with a line feed.
                r.line_start = true;
            }
        }
    }

    fn body_bytes(
        &mut self,
        dir: Direction,
        ts: u64,
        body: Body,
        rest: &[u8],
        out: &mut Vec<L7Exchange>,
    ) -> usize {
        let max_trailer = self.limits.max_head_bytes;
        let strict = !self.limits.lenient;
        let r = self.reader(dir);
        let (used, body_n, done, next) = match body {
            Body::Length(left) => {
                let take = left.min(rest.len() as u64);
                let left = left - take;
                (take as usize, take, left == 0, Body::Length(left))
            }
            Body::UntilClose => (rest.len(), rest.len() as u64, false, Body::UntilClose),
            Body::Chunked(mut c) => match c.step(rest, max_trailer, strict) {
                ChunkStep::More { n, body } => (n, body, false, Body::Chunked(c)),
                ChunkStep::Done { n, body } => (n, body, true, Body::Chunked(c)),
                ChunkStep::Error { n, body, why } => {
                    // The message happened; report it, then resynchronise right where the
                    // framing broke: what follows may be the next (possibly smuggled) message.
                    if let Some(m) = r.msg.as_mut() {
                        m.bytes += n as u64;
                        m.body_bytes += body;
                    }
                    if self.first_error.is_none() {
                        self.first_error = Some(why.into());
                    }
                    self.complete(dir, ts, out);
                    let r = self.reader(dir);
                    r.state = State::Resync;
                    r.line_start = n > 0 && rest[n - 1] == b'\n';
                    return n;
                }
            },
        };
        if let Some(m) = r.msg.as_mut() {
            m.bytes += used as u64;
            m.body_bytes += body_n;
        }
        if done {
            self.complete(dir, ts, out);
        } else {
            r.state = State::Body(next);
        }
        used
    }

    /// The current message of `dir` is complete.
    fn complete(&mut self, dir: Direction, _ts: u64, out: &mut Vec<L7Exchange>) {
        let r = self.reader(dir);
        r.state = State::Idle;
        let Some(msg) = r.msg.take() else { return };
        if let (Some(log), Some(i)) = (self.log.as_mut(), msg.log_index) {
            log[i].complete = true;
            log[i].body_bytes = msg.body_bytes;
        }
        let keep_alive = msg.head.keep_alive() && !msg.head.is_http09();
        match dir {
            Direction::ClientToServer => {
                let switch = self.pending.back().is_some_and(|p| p.switch_candidate);
                if let Some(p) = self.pending.back_mut() {
                    p.bytes = msg.bytes;
                    p.body_bytes = msg.body_bytes;
                }
                if switch {
                    self.req.state = State::Stash;
                } else if !keep_alive {
                    self.req.state = State::Closed;
                }
            }
            Direction::ServerToClient => {
                let req = if msg.unsolicited {
                    None
                } else {
                    self.pending.pop_front()
                };
                let was_candidate = req.as_ref().is_some_and(|p| p.switch_candidate);
                self.emit(req, Some(msg), out);
                if !keep_alive {
                    self.resp.state = State::Closed;
                }
                if was_candidate && matches!(self.req.state, State::Stash) {
                    // The server refused the upgrade: the held bytes are plain HTTP/1.
                    self.unstash(out);
                }
            }
        }
    }

    fn unstash(&mut self, out: &mut Vec<L7Exchange>) {
        self.req.state = State::Idle;
        let held = std::mem::take(&mut self.stash);
        let ts = self.stash_ts;
        if !held.is_empty() {
            self.run(Direction::ClientToServer, ts, &held, out);
        }
    }

    /// Both directions now carry another protocol.
    fn switch(&mut self, tunnel: Tunnel, out: &mut Vec<L7Exchange>) {
        self.tunnel = Some(tunnel);
        self.resp.state = State::Tunnel;
        self.resp.buf.clear();
        let held = std::mem::take(&mut self.stash);
        let ts = self.stash_ts;
        // The request side may still be finishing the upgrade request's body; bytes after it
        // (held in the stash) already belong to the tunnel.
        if matches!(self.req.state, State::Stash | State::Idle) {
            self.req.state = State::Tunnel;
        }
        if !held.is_empty() {
            self.run(Direction::ClientToServer, ts, &held, out);
        }
    }

    fn emit(&mut self, req: Option<PendingReq>, resp: Option<Msg>, out: &mut Vec<L7Exchange>) {
        let (kind, request_time, response_time) = match (&req, &resp) {
            (Some(q), Some(r)) => (ExchangeKind::RequestResponse, q.ts, Some(r.ts)),
            (Some(q), None) => (ExchangeKind::RequestOnly, q.ts, None),
            (None, Some(r)) => (ExchangeKind::ResponseOnly, r.ts, Some(r.ts)),
            (None, None) => return,
        };
        let qh = req.as_ref().map(|q| &q.head);
        let rh = resp.as_ref().map(|r| &r.head);
        let status = rh.and_then(|h| h.status);
        let http = http_detail(
            qh,
            rh,
            req.as_ref().map(|q| q.body_bytes),
            resp.as_ref().map(|r| r.body_bytes),
        );
        self.stats.records += 1;
        out.push(L7Exchange {
            kind,
            request_time: Some(Timestamp(request_time)),
            response_time: response_time.map(Timestamp),
            latency_ns: match (&req, &resp) {
                (Some(q), Some(r)) => Some(r.ts.saturating_sub(q.ts)),
                _ => None,
            },
            request_bytes: req.as_ref().map_or(0, |q| q.bytes),
            response_bytes: resp.as_ref().map_or(0, |r| r.bytes),
            status: status.map(|s| s.to_string()),
            error: status.is_some_and(status_is_error),
            detail: L7Detail::Http(http),
        });
    }

    /// Skip to the next line that starts a message. Returns bytes used and, when a message
    /// start was found whose first bytes were carried over, the bytes to parse first.
    fn resync(&mut self, dir: Direction, rest: &[u8]) -> (usize, Option<Vec<u8>>) {
        let r = self.reader(dir);
        let role = r.role;
        let carry = r.buf.take();
        let carried = carry.len();
        // Without a carry, scan the input in place.
        let joined: Vec<u8>;
        let scan: &[u8] = if carried == 0 {
            rest
        } else {
            let mut v = carry;
            v.extend_from_slice(rest);
            joined = v;
            &joined
        };
        let mut line_start = r.line_start || carried > 0;
        let mut i = 0;
        while i < scan.len() {
            if line_start {
                match starts_message(role, &scan[i..]) {
                    StartMatch::Yes => {
                        self.stats.skipped_bytes += i as u64;
                        let r = self.reader(dir);
                        r.state = State::Idle;
                        r.line_start = true;
                        if i < carried {
                            // Part of the message start came from the carry: hand it all back.
                            return (rest.len(), Some(scan[i..].to_vec()));
                        }
                        return (i - carried, None);
                    }
                    StartMatch::Prefix => {
                        // Possibly a message start cut by the chunk boundary: carry it.
                        self.stats.skipped_bytes += i as u64;
                        let r = self.reader(dir);
                        r.buf.set(scan[i..].to_vec());
                        r.state = State::Resync;
                        return (rest.len(), None);
                    }
                    StartMatch::No => {}
                }
            }
            line_start = scan[i] == b'\n';
            i += 1;
        }
        self.stats.skipped_bytes += scan.len() as u64;
        let r = self.reader(dir);
        r.line_start = line_start;
        r.state = State::Resync;
        (rest.len(), None)
    }
}

/// The reported fields of one exchange. A declared Content-Length is reported as is; a
/// chunked body reports its decoded size.
fn http_detail(
    qh: Option<&Head>,
    rh: Option<&Head>,
    req_body: Option<u64>,
    resp_body: Option<u64>,
) -> HttpExchange {
    let content_len = |h: Option<&Head>, body: Option<u64>| {
        h.and_then(|h| h.content_length)
            .or_else(|| h.filter(|h| h.chunked).and(body))
    };
    HttpExchange {
        method: qh.and_then(|h| h.method.clone()),
        path: qh.and_then(|h| h.target.clone()),
        host: qh.and_then(|h| h.host.clone()),
        version: rh.or(qh).map(|h| h.version.clone()),
        status: rh.and_then(|h| h.status),
        reason: rh.and_then(|h| h.reason.clone()),
        request_content_type: qh.and_then(|h| h.content_type.clone()),
        response_content_type: rh.and_then(|h| h.content_type.clone()),
        request_content_length: content_len(qh, req_body),
        response_content_length: content_len(rh, resp_body),
        user_agent: qh.and_then(|h| h.user_agent.clone()),
        stream_id: None,
    }
}

impl ProtocolParser for Http1Parser {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Http
    }

    fn feed(&mut self, dir: Direction, ts_ns: u64, data: &[u8], out: &mut Vec<L7Exchange>) {
        self.run(dir, ts_ns, data, out);
    }

    fn gap(&mut self, dir: Direction, len: u64) {
        self.stats.gap_bytes += len;
        let state = std::mem::replace(&mut self.reader(dir).state, State::Idle);
        let next = match state {
            // Lost body bytes of a known length keep the framing intact.
            State::Body(Body::Length(left)) if len < left => {
                if let Some(m) = self.reader(dir).msg.as_mut() {
                    m.bytes += len;
                    m.body_bytes += len;
                }
                State::Body(Body::Length(left - len))
            }
            State::Body(Body::UntilClose) => State::Body(Body::UntilClose),
            State::Tunnel => {
                if let Some(Tunnel::Parser(p)) = &mut self.tunnel {
                    p.gap(dir, len);
                }
                State::Tunnel
            }
            State::Closed => State::Closed,
            State::Idle | State::Resync => State::Resync,
            State::Head | State::Body(_) | State::Stash => {
                let r = self.reader(dir);
                r.msg = None;
                r.buf.clear();
                State::Resync
            }
        };
        let r = self.reader(dir);
        r.line_start = false;
        r.state = next;
    }

    fn finish(&mut self, ts_ns: u64, out: &mut Vec<L7Exchange>) {
        self.settle_http09(out);
        // A close-delimited (or cut) response ends here.
        if self.resp.msg.is_some() {
            self.complete(Direction::ServerToClient, ts_ns, out);
        }
        if let Some(m) = self.req.msg.take() {
            if let Some(p) = self.pending.back_mut() {
                p.bytes = m.bytes;
                p.body_bytes = m.body_bytes;
            }
        }
        while let Some(p) = self.pending.pop_front() {
            self.emit(Some(p), None, out);
        }
        if let Some(Tunnel::Parser(p)) = &mut self.tunnel {
            p.finish(ts_ns, out);
        }
    }

    fn stats(&self) -> ParserStats {
        let mut s = self.stats;
        if let Some(Tunnel::Parser(p)) = &self.tunnel {
            let t = p.stats();
            s.skipped_bytes += t.skipped_bytes;
            s.gap_bytes += t.gap_bytes;
            s.overflow_bytes += t.overflow_bytes;
            s.records += t.records;
        }
        s
    }
}

/// Result of parsing one direction on its own (conformance tests, tooling).
#[derive(Debug, Clone, Default)]
pub struct StreamOutcome {
    pub messages: Vec<LoggedMessage>,
    /// The first reason input was rejected, if any was.
    pub error: Option<String>,
    pub skipped_bytes: u64,
}

/// How [`parse_stream`] treats its input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamMode {
    /// End the stream after the input: a message left incomplete is an error, a
    /// close-delimited response completes.
    pub finish: bool,
    /// Responses answer HEAD requests (no bodies).
    pub head: bool,
    /// Lenient request lines (see [`Http1Limits::lenient`]).
    pub lenient: bool,
}

/// Parse `data` as a stream of requests or responses, fed `chunk` bytes at a time, with full
/// header lists kept. Responses are framed as answers to GET (or HEAD) requests.
pub fn parse_stream(role: Role, data: &[u8], chunk: usize, mode: StreamMode) -> StreamOutcome {
    let mut p = Http1Parser::with_limits(Http1Limits {
        lenient: mode.lenient,
        ..Default::default()
    });
    p.log = Some(Vec::new());
    p.assume_method = Some(if mode.head { "HEAD" } else { "GET" }.into());
    let dir = match role {
        Role::Request => Direction::ClientToServer,
        Role::Response => Direction::ServerToClient,
    };
    let mut out = Vec::new();
    for c in data.chunks(chunk.max(1)) {
        p.feed(dir, 0, c, &mut out);
    }
    if mode.finish {
        let r = p.reader(dir);
        let incomplete = matches!(
            &r.state,
            State::Head | State::Body(Body::Length(_)) | State::Body(Body::Chunked(_))
        );
        if incomplete && p.first_error.is_none() {
            p.first_error = Some("stream ended inside a message".into());
        }
        p.finish(0, &mut out);
    }
    StreamOutcome {
        messages: p.log.take().unwrap_or_default(),
        error: p.first_error.take(),
        skipped_bytes: p.stats.skipped_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(parts: &[(Direction, &[u8])]) -> (Vec<L7Exchange>, ParserStats) {
        let mut p = Http1Parser::new();
        let mut out = Vec::new();
        for (i, (d, b)) in parts.iter().enumerate() {
            p.feed(*d, i as u64 * 1000, b, &mut out);
        }
        p.finish(1_000_000, &mut out);
        (out, p.stats())
    }

    fn http(e: &L7Exchange) -> &HttpExchange {
        match &e.detail {
            L7Detail::Http(h) => h,
            other => panic!("{other:?}"),
        }
    }

    use Direction::{ClientToServer as C, ServerToClient as S};

    #[test]
    fn pipelined_keep_alive_with_chunked_and_head() {
        let (out, st) = run(&[
            (C, b"GET /a HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"),
            (S, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
            (S, b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\n"),
        ]);
        assert_eq!(out.len(), 2, "{out:?}");
        let a = http(&out[0]);
        assert_eq!(
            (
                a.method.as_deref(),
                a.path.as_deref(),
                a.status,
                a.response_content_length
            ),
            (Some("GET"), Some("/a"), Some(200), Some(3))
        );
        assert_eq!(out[0].latency_ns, Some(1000));
        let b = http(&out[1]);
        assert_eq!((b.method.as_deref(), b.status), (Some("HEAD"), Some(404)));
        assert!(out[1].error);
        assert_eq!(st.skipped_bytes, 0);
    }

    #[test]
    fn interim_and_close_delimited() {
        let (out, _) = run(&[
            (
                C,
                b"POST /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
            ),
            (S, b"HTTP/1.1 100 Continue\r\n\r\n"),
            (C, b"hi"),
            (S, b"HTTP/1.0 200 OK\r\n\r\nbody until close"),
        ]);
        assert_eq!(out.len(), 1);
        let h = http(&out[0]);
        assert_eq!((h.status, h.request_content_length), (Some(200), Some(2)));
        assert_eq!(out[0].response_bytes, 19 + 16);
    }

    #[test]
    fn garbage_is_skipped_and_parsing_resumes() {
        let (out, st) = run(&[
            (C, b"\x00\x01garbage\r\nGET /ok HTTP/1.1\r\n\r\n"),
            (S, b"HTTP/1.1 204 No Content\r\n\r\n"),
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(http(&out[0]).path.as_deref(), Some("/ok"));
        assert_eq!(st.skipped_bytes, 11);
    }

    #[test]
    fn one_sided_records() {
        let (out, _) = run(&[
            (S, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            (C, b"GET /late HTTP/1.1\r\n\r\n"),
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].kind, ExchangeKind::ResponseOnly);
        assert_eq!(out[1].kind, ExchangeKind::RequestOnly);
    }

    #[test]
    fn websocket_upgrade_goes_opaque() {
        let mut p = Http1Parser::new();
        let mut out = Vec::new();
        p.feed(
            C,
            0,
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello",
            &mut out,
        );
        p.feed(
            S,
            1,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02ok",
            &mut out,
        );
        p.feed(C, 2, b"GET /not-http HTTP/1.1\r\n\r\n", &mut out);
        p.finish(3, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(http(&out[0]).status, Some(101));
        assert_eq!(p.opaque_bytes(), 7 + 4 + 26);
        assert_eq!(p.stats().skipped_bytes, 0);
    }

    #[test]
    fn h2c_upgrade_hands_over_to_http2() {
        let mut p = Http1Parser::new();
        let mut out = Vec::new();
        p.feed(C, 10, b"GET /h2 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", &mut out);
        p.feed(
            S,
            20,
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
            &mut out,
        );
        // Server SETTINGS, then HEADERS for stream 1 (":status: 200" indexed, END_STREAM).
        p.feed(
            S,
            30,
            &[0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 1, 5, 0, 0, 0, 1, 0x88],
            &mut out,
        );
        p.feed(
            C,
            40,
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
            &mut out,
        );
        p.finish(50, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let L7Detail::Http2(h) = &out[0].detail else {
            panic!("{:?}", out[0])
        };
        assert_eq!(
            (h.path.as_deref(), h.status, h.stream_id),
            (Some("/h2"), Some(200), Some(1))
        );
        assert_eq!(out[0].latency_ns, Some(20));
        assert_eq!(p.stats().skipped_bytes, 0);
    }

    #[test]
    fn refused_upgrade_continues_as_http1() {
        let (out, _) = run(&[
            (C, b"GET /a HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
            (S, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ]);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(http(&out[1]).path.as_deref(), Some("/b"));
    }

    #[test]
    fn gap_in_sized_body_keeps_framing() {
        let mut p = Http1Parser::new();
        let mut out = Vec::new();
        p.feed(
            C,
            0,
            b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab",
            &mut out,
        );
        p.gap(C, 5);
        p.feed(C, 0, b"xyzGET /next HTTP/1.1\r\n\r\n", &mut out);
        p.feed(S, 0, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(http(&out[1]).path.as_deref(), Some("/next"));
    }

    #[test]
    fn http09() {
        let (out, _) = run(&[(C, b"GET /zeek.html\r\n"), (S, b"<html>hello</html>")]);
        assert_eq!(out.len(), 1);
        let h = http(&out[0]);
        assert_eq!(
            (h.path.as_deref(), h.version.as_deref(), h.status),
            (Some("/zeek.html"), Some("HTTP/0.9"), None)
        );
    }

    /// A long head arriving one byte at a time: the search for the first line end (HTTP/0.9
    /// check) looks at each byte once, not at the whole buffer on every byte.
    #[test]
    fn long_head_trickling_in_is_scanned_linearly() {
        let limits = Http1Limits {
            max_head_bytes: 1 << 20,
            ..Http1Limits::default()
        };
        let target = format!("/{}", "a".repeat(200_000));
        // A request line with a version (not 0.9), then headers.
        let mut req = format!("GET {target} HTTP/1.1\r\n").into_bytes();
        for i in 0..1000 {
            req.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        // An HTTP/0.9 request line as long, with no line end until the last byte.
        let req09 = format!("GET {target}\n").into_bytes();
        for (bytes, version) in [(&req, "HTTP/1.1"), (&req09, "HTTP/0.9")] {
            let mut p = Http1Parser::with_limits(limits);
            let mut out = Vec::new();
            for b in bytes.chunks(1) {
                p.feed(C, 1, b, &mut out);
            }
            let first_line = target.len() + 5 + if version == "HTTP/0.9" { 0 } else { 10 };
            assert!(
                p.req.buf.scanned_total <= first_line as u64,
                "{version}: scanned {} bytes for a {first_line}-byte first line",
                p.req.buf.scanned_total
            );
            p.feed(
                S,
                2,
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                &mut out,
            );
            p.finish(3, &mut out);
            assert_eq!(out.len(), 1, "{version}");
            let h = http(&out[0]);
            assert_eq!(h.path.as_deref(), Some(target.as_str()), "{version}");
            assert_eq!(p.stats().skipped_bytes, 0, "{version}");
        }
    }

    /// A response that began before any request (the server spoke first) answers nothing,
    /// even when a request arrives before its body ends (Zeek's
    /// http-09-content-length-confusion trace); the request gets what follows.
    #[test]
    fn response_before_any_request_is_not_paired_with_a_later_request() {
        let (out, _) = run(&[
            (S, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"),
            (C, b"GET /\r\n\r\n"),
            (S, b"this is too much.\r\n"),
        ]);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].kind, ExchangeKind::ResponseOnly);
        assert_eq!(
            (http(&out[0]).status, out[0].response_bytes),
            (Some(200), 42)
        );
        assert_eq!(out[1].kind, ExchangeKind::RequestResponse);
        let h = http(&out[1]);
        assert_eq!(
            (h.method.as_deref(), h.path.as_deref(), h.version.as_deref()),
            (Some("GET"), Some("/"), Some("HTTP/0.9"))
        );
        assert_eq!(out[1].response_bytes, 15);
    }

    #[test]
    fn detection() {
        assert_eq!(detect(C, b"GE"), Detection::NeedMore);
        assert_eq!(detect(C, b"GET /"), Detection::Match);
        assert_eq!(detect(C, b"PRI * HTTP/2.0"), Detection::NoMatch);
        assert_eq!(detect(S, b"HTTP/1.1 200"), Detection::Match);
        assert_eq!(detect(S, b"HTTP/"), Detection::NeedMore);
        assert_eq!(detect(S, b"SSH-2.0"), Detection::NoMatch);
    }
}
