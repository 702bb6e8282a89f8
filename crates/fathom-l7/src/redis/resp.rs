//! Streaming RESP2/RESP3 reader for one direction of a Redis connection.
//!
//! The reader works token by token (a `\r\n`-terminated line, or a bulk payload of known
//! length) and keeps only a summary of the top-level value being read: its type, the first
//! few direct children as short strings, the error text. Bulk payloads are passed over as
//! they arrive, so a 512 MB value never sits in memory, and because state only changes when a
//! whole token is available the result does not depend on chunk boundaries.

use crate::wire::{lossy, StreamBuf};

/// Limits for one direction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RespLimits {
    /// Longest line (type byte, number or simple string, inline command) accepted.
    pub max_line: usize,
    /// Deepest aggregate nesting followed; deeper values are a protocol error.
    pub max_depth: usize,
    /// Direct children of a top-level aggregate kept as text.
    pub max_items: usize,
    /// Bytes kept of each of those children (and of scalar replies, error texts).
    pub max_item_len: usize,
}

/// Which side of the connection a reader parses: clients send arrays of bulk strings or
/// inline commands, servers send any RESP type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

/// Summary of one complete top-level value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Value {
    /// Time of the first byte and wire size.
    pub ts: u64,
    pub bytes: u64,
    /// RESP type name of the top-level value ("array", "push", "error", …).
    pub kind: &'static str,
    /// Number of direct children of a top-level aggregate (pairs counted twice for maps).
    pub children: u64,
    /// The first direct children that were strings/numbers, as text; a child that is itself an
    /// aggregate is recorded as an empty string so that positions stay right.
    pub items: Vec<String>,
    /// Text of a scalar top-level value (simple string, error, bulk, number).
    pub text: Option<String>,
    /// A RESP3-only type appeared somewhere in the value.
    pub resp3: bool,
    /// The value was an inline command (client side).
    pub inline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// Elements still expected; `None` for streamed aggregates (`*?`), ended by `.`.
    Aggregate { left: Option<u64>, attribute: bool },
    /// A streamed string (`$?`): `;n` chunks until `;0`.
    StreamedString,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a token.
    Token,
    /// Inside a bulk payload: bytes left including the trailing CRLF, and whether the payload
    /// is a direct child (or the top-level value) whose text is kept.
    Bulk { left: u64, keep: bool },
    /// Discarding the rest of a line that was malformed or too long.
    SkipLine,
}

pub(crate) enum Step {
    /// Need more bytes.
    Wait,
    /// Made progress; call again.
    Progress,
    /// A complete top-level value.
    Done(Value),
}

pub(crate) struct RespReader {
    side: Side,
    limits: RespLimits,
    pub(crate) buf: StreamBuf,
    state: State,
    stack: Vec<Open>,
    cur: Option<Value>,
    /// Text of the bulk payload being kept.
    bulk_text: Vec<u8>,
    /// Bytes skipped as unparseable since the last call to [`take_skipped`](Self::take_skipped).
    skipped: u64,
    /// Set by a gap until a value parses again.
    resync: bool,
    scratch: Vec<u8>,
    /// Absolute stream offset up to which the buffer is known to hold no `\n`, so that a line
    /// arriving a few bytes at a time is scanned once, not once per arrival (which is
    /// quadratic in the line length: up to `max_line`² work for a line sent in 1-byte
    /// segments).
    no_newline_until: u64,
}

impl RespReader {
    pub(crate) fn new(side: Side, limits: RespLimits) -> Self {
        RespReader {
            side,
            limits,
            buf: StreamBuf::new(),
            state: State::Token,
            stack: Vec::new(),
            cur: None,
            bulk_text: Vec::new(),
            skipped: 0,
            resync: false,
            scratch: Vec::new(),
            no_newline_until: 0,
        }
    }

    pub(crate) fn take_skipped(&mut self) -> u64 {
        std::mem::take(&mut self.skipped)
    }

    /// Forgets the partial value and buffered bytes (capture gap); the next line that parses
    /// as the start of a value resynchronises the reader.
    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        // Lines that do not parse are skipped one by one until a value does.
        self.state = State::Token;
        self.resync = true;
        self.stack.clear();
        self.cur = None;
        self.bulk_text.clear();
    }

    /// Bytes of the current partial value (for accounting at the end of a connection).
    pub(crate) fn in_progress(&self) -> bool {
        self.cur.is_some()
    }

    fn consume(&mut self, n: usize) {
        if let Some(v) = self.cur.as_mut() {
            v.bytes += n as u64;
        }
        self.buf.consume(n);
    }

    /// Drops the current value as unparseable and skips the rest of the current line.
    fn protocol_error(&mut self) {
        if let Some(v) = self.cur.take() {
            // Bytes already consumed for the value are now known to be garbage.
            self.skipped += v.bytes;
        }
        self.stack.clear();
        self.bulk_text.clear();
        self.state = State::SkipLine;
    }

    pub(crate) fn step(&mut self) -> Step {
        match self.state {
            State::SkipLine => {
                let data = self.buf.data();
                match data.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        self.skipped += i as u64 + 1;
                        self.buf.consume(i + 1);
                        self.state = State::Token;
                        Step::Progress
                    }
                    None if data.is_empty() => Step::Wait,
                    None => {
                        self.skipped += data.len() as u64;
                        let n = data.len();
                        self.buf.consume(n);
                        Step::Wait
                    }
                }
            }
            State::Bulk { left, keep } => {
                let avail = self.buf.len() as u64;
                if avail == 0 {
                    return Step::Wait;
                }
                let n = avail.min(left) as usize;
                if keep {
                    // Payload bytes only (not the CRLF), up to the kept length.
                    let payload_left = left.saturating_sub(2) as usize;
                    let room = self
                        .limits
                        .max_item_len
                        .saturating_sub(self.bulk_text.len());
                    let take = n.min(payload_left).min(room);
                    let chunk = &self.buf.data()[..take];
                    self.bulk_text.extend_from_slice(chunk);
                }
                self.consume(n);
                let left = left - n as u64;
                if left > 0 {
                    self.state = State::Bulk { left, keep };
                    return Step::Wait;
                }
                self.state = State::Token;
                let text = keep.then(|| lossy(&std::mem::take(&mut self.bulk_text), usize::MAX));
                self.bulk_text.clear();
                self.element_done(text)
            }
            State::Token => self.token(),
        }
    }

    fn token(&mut self) -> Step {
        let data = self.buf.data();
        let Some(&first) = data.first() else {
            return Step::Wait;
        };
        // Offsets only grow (consuming and clearing advance them), so bytes before
        // `no_newline_until` that are still buffered were already scanned.
        let from =
            (self.no_newline_until.saturating_sub(self.buf.offset()) as usize).min(data.len());
        let nl = data[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| i + from);
        if nl.is_none() {
            self.no_newline_until = self.buf.offset() + data.len() as u64;
        }
        let Some(nl) = nl.filter(|&i| i < self.limits.max_line) else {
            if nl.is_some() || data.len() >= self.limits.max_line {
                // Too long to be a RESP line (or an inline command Redis would accept).
                self.protocol_error();
                return Step::Progress;
            }
            return Step::Wait;
        };
        let line_len = nl + 1;
        let body_end = if nl > 0 && data[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        let top = self.stack.is_empty() && self.cur.is_none();

        if top {
            if first == b'\r' || first == b'\n' {
                // Empty lines between commands are ignored by Redis.
                self.buf.consume(line_len);
                return Step::Progress;
            }
            let ts = self.buf.ts();
            self.cur = Some(Value {
                ts,
                ..Value::default()
            });
            if self.side == Side::Client && first != b'*' {
                if self.resync {
                    // After a gap a text line is more likely the tail of a lost value than an
                    // inline command: wait for a RESP array to resynchronise.
                    self.cur = None;
                    self.skipped += line_len as u64;
                    self.buf.consume(line_len);
                    return Step::Progress;
                }
                let line = data[..body_end].to_vec();
                self.consume(line_len);
                return self.inline(&line);
            }
        }

        if body_end == 0 {
            // An empty line inside a value.
            self.consume(line_len);
            return self.bad();
        }
        // Reuse one scratch buffer for line bodies: no allocation per token.
        let mut body = std::mem::take(&mut self.scratch);
        body.clear();
        body.extend_from_slice(&data[1..body_end]);
        self.consume(line_len);
        let step = self.typed_line(first, &body);
        self.scratch = body;
        step
    }

    fn inline(&mut self, line: &[u8]) -> Step {
        let args = split_inline(line);
        let plausible = args.first().is_some_and(|a| {
            !a.is_empty()
                && a.len() <= 64
                && a.iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b"._-|:".contains(&b))
                && a[0].is_ascii_alphabetic()
        });
        if !plausible {
            self.protocol_error();
            self.state = State::Token; // the whole line was consumed already
            return Step::Progress;
        }
        let Some(mut v) = self.cur.take() else {
            return Step::Progress;
        };
        self.resync = false;
        v.kind = "inline";
        v.inline = true;
        v.children = args.len() as u64;
        v.items = args
            .iter()
            .take(self.limits.max_items)
            .map(|a| lossy(a, self.limits.max_item_len))
            .collect();
        Step::Done(v)
    }

    fn typed_line(&mut self, ty: u8, body: &[u8]) -> Step {
        let depth_ok = self.stack.len() < self.limits.max_depth;
        let top = self.stack.is_empty();
        // A client only ever sends arrays of bulk strings.
        if self.side == Side::Client && !matches!(ty, b'*' | b'$') {
            self.protocol_error();
            self.state = State::Token;
            return Step::Progress;
        }
        let resp3 = matches!(
            ty,
            b'_' | b',' | b'#' | b'!' | b'=' | b'(' | b'%' | b'~' | b'|' | b'>'
        );
        if let Some(v) = self.cur.as_mut() {
            v.resp3 |= resp3;
        }
        match ty {
            b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => {
                if top {
                    self.set_kind(match ty {
                        b'+' => "simple_string",
                        b'-' => "error",
                        b':' => "integer",
                        b',' => "double",
                        b'#' => "boolean",
                        b'(' => "big_number",
                        _ => "null",
                    });
                }
                if ty == b'_' && !body.is_empty() {
                    return self.bad();
                }
                let text = (ty != b'_').then(|| lossy(body, self.limits.max_item_len));
                self.element_done(text)
            }
            b'$' | b'!' | b'=' => {
                if body == b"?" && ty == b'$' {
                    if !depth_ok {
                        return self.bad();
                    }
                    if top {
                        self.set_kind("bulk_string");
                    }
                    self.stack.push(Open::StreamedString);
                    return Step::Progress;
                }
                let Some(n) = parse_int(body) else {
                    return self.bad();
                };
                if top {
                    self.set_kind(match (ty, n) {
                        (_, -1) => "null",
                        (b'$', _) => "bulk_string",
                        (b'!', _) => "bulk_error",
                        _ => "verbatim_string",
                    });
                }
                if n == -1 {
                    return self.element_done(None);
                }
                let Ok(n) = u64::try_from(n) else {
                    return self.bad();
                };
                let keep = self.stack.len() <= 1;
                self.bulk_text.clear();
                self.state = State::Bulk {
                    left: n.saturating_add(2),
                    keep,
                };
                Step::Progress
            }
            b';' => {
                // A chunk of a streamed string.
                if self.stack.last() != Some(&Open::StreamedString) {
                    return self.bad();
                }
                let Some(n) = parse_int(body).and_then(|n| u64::try_from(n).ok()) else {
                    return self.bad();
                };
                if n == 0 {
                    self.stack.pop();
                    return self.element_done(None);
                }
                // The chunk is not an element of its own: when it completes, the open
                // streamed string on top of the stack absorbs it.
                self.state = State::Bulk {
                    left: n.saturating_add(2),
                    keep: false,
                };
                Step::Progress
            }
            b'*' | b'%' | b'~' | b'|' | b'>' => {
                if !depth_ok {
                    return self.bad();
                }
                if top && ty != b'|' {
                    self.set_kind(match ty {
                        b'*' => "array",
                        b'%' => "map",
                        b'~' => "set",
                        _ => "push",
                    });
                }
                let per = if matches!(ty, b'%' | b'|') { 2 } else { 1 };
                let left = if body == b"?" {
                    None
                } else {
                    match parse_int(body) {
                        Some(-1) => {
                            if top {
                                self.set_kind("null");
                            }
                            return self.element_done(None);
                        }
                        Some(n) if n >= 0 => Some((n as u64).saturating_mul(per)),
                        _ => return self.bad(),
                    }
                };
                if top && ty != b'|' {
                    if let Some(v) = self.cur.as_mut() {
                        v.children = left.unwrap_or(0);
                    }
                }
                self.stack.push(Open::Aggregate {
                    left,
                    attribute: ty == b'|',
                });
                if left == Some(0) {
                    self.stack.pop();
                    return self.element_done_attr(ty == b'|', None);
                }
                Step::Progress
            }
            b'.' => {
                // End of a streamed aggregate.
                match self.stack.last() {
                    Some(Open::Aggregate {
                        left: None,
                        attribute,
                    }) => {
                        let attribute = *attribute;
                        self.stack.pop();
                        self.element_done_attr(attribute, None)
                    }
                    _ => self.bad(),
                }
            }
            _ => self.bad(),
        }
    }

    fn bad(&mut self) -> Step {
        self.protocol_error();
        // The offending line is already consumed.
        self.state = State::Token;
        Step::Progress
    }

    fn set_kind(&mut self, kind: &'static str) {
        if let Some(v) = self.cur.as_mut() {
            v.kind = kind;
        }
    }

    fn element_done(&mut self, text: Option<String>) -> Step {
        self.element_done_attr(false, text)
    }

    /// One element (scalar or aggregate) is complete: record it in its parent, close parents
    /// that are now complete, and report the top-level value when it is done.
    fn element_done_attr(&mut self, attribute: bool, text: Option<String>) -> Step {
        let mut attribute = attribute;
        let mut text = text;
        loop {
            let depth = self.stack.len();
            match self.stack.last_mut() {
                None => {
                    if attribute {
                        // An attribute precedes the value it annotates: keep reading.
                        if let Some(v) = self.cur.as_mut() {
                            v.items.clear();
                            v.children = 0;
                        }
                        return Step::Progress;
                    }
                    let Some(mut v) = self.cur.take() else {
                        return Step::Progress;
                    };
                    self.resync = false;
                    if v.kind != "array" && v.kind != "map" && v.kind != "set" && v.kind != "push" {
                        v.text = text;
                    }
                    return Step::Done(v);
                }
                Some(Open::StreamedString) => return Step::Progress,
                Some(Open::Aggregate {
                    left,
                    attribute: parent_attr,
                }) => {
                    let parent_attr = *parent_attr;
                    if !attribute {
                        if let Some(l) = left.as_mut() {
                            *l = l.saturating_sub(1);
                        }
                    }
                    let complete = *left == Some(0);
                    if depth == 1 && !attribute && !parent_attr {
                        if let Some(v) = self.cur.as_mut() {
                            if left.is_none() {
                                v.children += 1;
                            }
                            if v.items.len() < self.limits.max_items {
                                v.items.push(text.take().unwrap_or_default());
                            }
                        }
                    }
                    if !complete {
                        return Step::Progress;
                    }
                    self.stack.pop();
                    // The popped aggregate is now the completed element.
                    attribute = parent_attr;
                    text = None;
                }
            }
        }
    }
}

/// Parses a RESP decimal integer.
fn parse_int(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Splits an inline command the way Redis does (`sdssplitargs`): whitespace separates
/// arguments; double quotes allow escapes, single quotes allow `\'`.
pub(crate) fn split_inline(line: &[u8]) -> Vec<Vec<u8>> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            break;
        }
        let mut arg = Vec::new();
        match line[i] {
            b'"' => {
                i += 1;
                while i < line.len() && line[i] != b'"' {
                    if line[i] == b'\\' && i + 1 < line.len() {
                        i += 1;
                        let c = line[i];
                        let hex = |b: u8| (b as char).to_digit(16);
                        if c == b'x' && i + 2 < line.len() {
                            if let (Some(h), Some(l)) = (hex(line[i + 1]), hex(line[i + 2])) {
                                arg.push((h * 16 + l) as u8);
                                i += 3;
                                continue;
                            }
                        }
                        arg.push(match c {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                    } else {
                        arg.push(line[i]);
                    }
                    i += 1;
                }
                i += 1;
            }
            b'\'' => {
                i += 1;
                while i < line.len() && line[i] != b'\'' {
                    if line[i] == b'\\' && line.get(i + 1) == Some(&b'\'') {
                        i += 1;
                    }
                    arg.push(line[i]);
                    i += 1;
                }
                i += 1;
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    arg.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push(arg);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RespLimits {
        RespLimits {
            max_line: 64 * 1024,
            max_depth: 8,
            max_items: 8,
            max_item_len: 64,
        }
    }

    /// Pushes `data` in pieces of `chunk` bytes, stepping after each; the values completed.
    fn read(r: &mut RespReader, data: &[u8], chunk: usize) -> Vec<Value> {
        let mut out = Vec::new();
        for piece in data.chunks(chunk) {
            r.buf.push(1, piece);
            loop {
                match r.step() {
                    Step::Wait => break,
                    Step::Progress => {}
                    Step::Done(v) => out.push(v),
                }
            }
        }
        out
    }

    #[test]
    fn long_line_trickling_in_parses_as_when_whole() {
        // The newline scan resumes where the previous call stopped (it used to rescan the
        // whole buffered line on every arrival: quadratic, found by the redis fuzz target
        // running at a few hundred inputs per second).
        let line = format!("+{}\r\n:42\r\n", "x".repeat(20_000));
        let whole = read(
            &mut RespReader::new(Side::Server, limits()),
            line.as_bytes(),
            usize::MAX,
        );
        for chunk in [1, 3, 1000] {
            let cut = read(
                &mut RespReader::new(Side::Server, limits()),
                line.as_bytes(),
                chunk,
            );
            assert_eq!(cut, whole, "chunk {chunk}");
        }
        assert_eq!(whole.len(), 2);
        assert_eq!((whole[0].kind, whole[0].bytes), ("simple_string", 20_003));
        assert_eq!(whole[1].text.as_deref(), Some("42"));
    }

    #[test]
    fn newline_found_after_a_gap_cleared_a_scanned_line() {
        let mut r = RespReader::new(Side::Server, limits());
        assert!(read(&mut r, b"+partial line without its end", 4).is_empty());
        r.reset();
        let v = read(&mut r, b"+OK\r\n", 1);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].text.as_deref(), Some("OK"));
    }
}
