//! HTTP/1.x message framing: where a head ends, what it says (via `httparse`), and how long
//! the body is (RFC 9112 §6). No I/O, no pairing: the reader in `mod.rs` drives these.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Request,
    Response,
}

/// What a message head says, reduced to the fields Fathom reports plus what framing needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    pub method: Option<String>,
    pub target: Option<String>,
    /// "HTTP/1.0", "HTTP/1.1" or "HTTP/0.9".
    pub version: String,
    pub status: Option<u16>,
    pub reason: Option<String>,
    pub host: Option<String>,
    pub content_type: Option<String>,
    pub content_length: Option<u64>,
    pub user_agent: Option<String>,
    /// Transfer-Encoding ends in `chunked`.
    pub chunked: bool,
    /// Transfer-Encoding present (chunked or not).
    pub transfer_encoding: bool,
    pub upgrade: Option<String>,
    pub connection_close: bool,
    pub connection_keep_alive: bool,
    pub connection_upgrade: bool,
    /// Every header as sent, only when asked for (conformance tests, debugging).
    pub headers: Vec<(String, String)>,
    /// The framing headers are unusable (bad or conflicting Content-Length, …): the head is
    /// real but where the body ends is not known.
    pub framing_error: Option<&'static str>,
    /// The request line was only readable leniently (extra spaces, missing target).
    pub lenient_line: bool,
    /// Bytes of the head, request/status line and blank line included.
    pub len: usize,
}

impl Head {
    pub fn is_http09(&self) -> bool {
        self.version == "HTTP/0.9"
    }

    /// Whether the connection stays open after this message (RFC 9112 §9.3).
    pub fn keep_alive(&self) -> bool {
        if self.connection_close {
            return false;
        }
        self.version == "HTTP/1.1" || self.connection_keep_alive
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// `httparse` rejected the head.
    Syntax(String),
    /// The head parsed but its framing headers are unusable (bad Content-Length, …).
    Framing(&'static str),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::Syntax(s) => write!(f, "invalid head: {s}"),
            HeadError::Framing(s) => write!(f, "invalid framing: {s}"),
        }
    }
}

/// Index just past the blank line that ends a head in `buf`, searching from `from`.
/// Accepts CRLF and bare LF line endings, as deployed servers do.
pub fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3).min(buf.len());
    for i in memchr::memchr_iter(b'\n', &buf[start..]).map(|p| start + p) {
        match buf.get(i + 1) {
            Some(b'\n') => return Some(i + 2),
            Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => return Some(i + 3),
            _ => {}
        }
    }
    None
}

/// Where the head that started in `prev` ends in `next` (index just past the blank line),
/// without joining the two.
pub fn head_end_across(prev: &[u8], next: &[u8]) -> Option<usize> {
    // A terminator straddling the boundary is at most 3 bytes long.
    let tail = &prev[prev.len().saturating_sub(3)..];
    let mut window = tail.to_vec();
    window.extend_from_slice(&next[..next.len().min(3)]);
    if let Some(e) = find_head_end(&window, 0) {
        if e > tail.len() {
            return Some(e - tail.len());
        }
    }
    find_head_end(next, 0)
}

/// HTTP/0.9 request line: `METHOD SP target CRLF`, no version, no headers. Returns the head
/// length when `buf` starts with one.
pub fn http09_request(buf: &[u8]) -> Option<(Head, usize)> {
    let nl = buf.iter().position(|b| *b == b'\n')?;
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    if parts.next().is_some() || !super::is_method(method.as_bytes()) || target.is_empty() {
        return None;
    }
    if !target.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let head = Head {
        method: Some(method.to_string()),
        target: Some(target.to_string()),
        version: "HTTP/0.9".into(),
        len: nl + 1,
        ..Default::default()
    };
    Some((head, nl + 1))
}

/// Header text: UTF-8 when it is, otherwise ISO-8859-1 (HTTP's historical charset), so
/// that no byte is replaced.
fn lossy(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => b.iter().map(|&c| c as char).collect(),
    }
}

/// Parse a complete head (`buf` ends with the blank line). With `lenient`, a request line
/// `httparse` rejects is split by hand (method, target, version) the way Zeek and most
/// servers tolerate it: several spaces, spaces inside the target, an empty target.
pub fn parse_head(
    role: Role,
    buf: &[u8],
    keep_headers: bool,
    lenient: bool,
) -> Result<Head, HeadError> {
    match parse_head_strict(role, buf, keep_headers) {
        Ok(h) if !lenient && h.target.as_deref().is_some_and(|t| !t.is_ascii()) => {
            Err(HeadError::Syntax("non-ASCII request target".into()))
        }
        Err(HeadError::Syntax(e)) if lenient && role == Role::Request => {
            lenient_request(buf, keep_headers).ok_or(HeadError::Syntax(e))
        }
        other => other,
    }
}

fn lenient_request(buf: &[u8], keep: bool) -> Option<Head> {
    let nl = buf.iter().position(|b| *b == b'\n')?;
    let line = std::str::from_utf8(buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl])).ok()?;
    let (method, rest) = line.split_once(' ')?;
    if !super::is_method(method.as_bytes()) {
        return None;
    }
    let rest = rest.trim_matches(' ');
    let (target, version) = match rest.rsplit_once(' ') {
        Some((t, v)) if v.starts_with("HTTP/1.") && v.len() == 8 => (t.trim_matches(' '), v),
        _ if rest.starts_with("HTTP/1.") && rest.len() == 8 => ("", rest),
        _ => return None,
    };
    if target.bytes().any(|b| b.is_ascii_control()) {
        return None;
    }
    // Obsolete line folding (RFC 9112 §5.2): a line starting with SP/HT continues the
    // previous header value.
    let unfolded = unfold(&buf[nl + 1..]);
    let mut h = Head {
        method: Some(method.to_string()),
        target: Some(target.to_string()),
        version: version.to_string(),
        len: buf.len(),
        lenient_line: true,
        ..Default::default()
    };
    // Lines without a colon are skipped, as Zeek and many servers do.
    let headers = unfolded
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter_map(|l| {
            let c = l.iter().position(|b| *b == b':')?;
            let name = std::str::from_utf8(&l[..c]).ok()?.trim_matches([' ', '\t']);
            (!name.is_empty() && !name.contains(' ')).then_some((name, &l[c + 1..]))
        });
    apply_headers(&mut h, headers, keep);
    Some(h)
}

fn unfold(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let crlf = b[i] == b'\r' && b.get(i + 1) == Some(&b'\n');
        let nl_len = if crlf {
            2
        } else if b[i] == b'\n' {
            1
        } else {
            0
        };
        if nl_len > 0 && matches!(b.get(i + nl_len), Some(b' ') | Some(b'\t')) && i > 0 {
            out.push(b' ');
            i += nl_len;
            while matches!(b.get(i), Some(b' ') | Some(b'\t')) {
                i += 1;
            }
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Whether `buf` (an incomplete head) is a valid prefix of a head, by `httparse`'s rules.
pub fn valid_prefix(role: Role, buf: &[u8]) -> Result<(), String> {
    let mut storage = vec![httparse::EMPTY_HEADER; 4096];
    let r = match role {
        Role::Request => httparse::Request::new(&mut storage).parse(buf).map(|_| ()),
        Role::Response => httparse::Response::new(&mut storage).parse(buf).map(|_| ()),
    };
    r.map_err(|e| e.to_string())
}

fn parse_head_strict(role: Role, buf: &[u8], keep_headers: bool) -> Result<Head, HeadError> {
    // Most heads fit in a small stack array; heads with very many headers are legal, so
    // retry once with room for them.
    let mut small = [httparse::EMPTY_HEADER; 64];
    match parse_into(role, buf, keep_headers, &mut small) {
        Err(httparse::Error::TooManyHeaders) => {
            let mut big = vec![httparse::EMPTY_HEADER; 4096];
            parse_into(role, buf, keep_headers, &mut big)
        }
        other => other,
    }
    .map_err(|e| HeadError::Syntax(e.to_string()))
}

fn version_name(minor: Option<u8>) -> String {
    match minor {
        Some(0) => "HTTP/1.0".into(),
        _ => "HTTP/1.1".into(),
    }
}

fn parse_into<'b>(
    role: Role,
    buf: &'b [u8],
    keep_headers: bool,
    storage: &mut [httparse::Header<'b>],
) -> Result<Head, httparse::Error> {
    match role {
        Role::Request => {
            let mut req = httparse::Request::new(storage);
            match req.parse(buf)? {
                httparse::Status::Complete(len) => {
                    let mut h = Head {
                        method: req.method.map(str::to_string),
                        target: req.path.map(str::to_string),
                        version: version_name(req.version),
                        len,
                        ..Default::default()
                    };
                    apply_headers(
                        &mut h,
                        req.headers.iter().map(|x| (x.name, x.value)),
                        keep_headers,
                    );
                    Ok(h)
                }
                httparse::Status::Partial => Err(httparse::Error::Token),
            }
        }
        Role::Response => {
            let mut resp = httparse::Response::new(storage);
            match resp.parse(buf)? {
                httparse::Status::Complete(len) => {
                    let mut h = Head {
                        status: resp.code,
                        reason: resp.reason.map(str::to_string),
                        version: version_name(resp.version),
                        len,
                        ..Default::default()
                    };
                    apply_headers(
                        &mut h,
                        resp.headers.iter().map(|x| (x.name, x.value)),
                        keep_headers,
                    );
                    Ok(h)
                }
                httparse::Status::Partial => Err(httparse::Error::Token),
            }
        }
    }
}

fn apply_headers<'a>(h: &mut Head, headers: impl Iterator<Item = (&'a str, &'a [u8])>, keep: bool) {
    let mut te_codings: Vec<String> = Vec::new();
    // Only the headers Fathom reports are turned into strings (unless all are kept).
    const WANTED: [&str; 7] = [
        "host",
        "content-type",
        "user-agent",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
    ];
    for (name, raw) in headers {
        if !keep && !WANTED.iter().any(|w| w.eq_ignore_ascii_case(name)) {
            continue;
        }
        let value = lossy(raw).trim_matches([' ', '\t']).to_string();
        if keep {
            h.headers.push((name.to_string(), value.clone()));
        }
        if name.eq_ignore_ascii_case("host") {
            h.host.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("content-type") {
            h.content_type.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("user-agent") {
            h.user_agent.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("content-length") {
            match (parse_content_length(&value), h.content_length) {
                (Ok(n), Some(prev)) if prev != n => {
                    h.framing_error
                        .get_or_insert("conflicting Content-Length values");
                }
                (Ok(n), _) => h.content_length = Some(n),
                (Err(e), _) => {
                    h.framing_error.get_or_insert(e);
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            h.transfer_encoding = true;
            te_codings.extend(
                value
                    .split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .filter(|c| !c.is_empty()),
            );
        } else if name.eq_ignore_ascii_case("connection") {
            for tok in value.split(',') {
                let tok = tok.trim();
                if tok.eq_ignore_ascii_case("close") {
                    h.connection_close = true;
                } else if tok.eq_ignore_ascii_case("keep-alive") {
                    h.connection_keep_alive = true;
                } else if tok.eq_ignore_ascii_case("upgrade") {
                    h.connection_upgrade = true;
                }
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            h.upgrade.get_or_insert(value);
        }
    }
    h.chunked = te_codings.last().is_some_and(|c| c == "chunked");
}

/// Content-Length is 1*DIGIT (RFC 9110 §8.6); anything else (sign, spaces inside, overflow)
/// would let two parsers disagree on where the message ends, so it is an error.
fn parse_content_length(v: &str) -> Result<u64, &'static str> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid Content-Length");
    }
    // Beyond i64 no real body exists, and implementations using signed lengths disagree
    // about such values (a request-smuggling vector): treat as unusable framing.
    match v.parse::<u64>() {
        Ok(n) if n <= i64::MAX as u64 => Ok(n),
        _ => Err("Content-Length overflows"),
    }
}

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLen {
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
    /// Unknowable (bad framing headers): skip to the next message start.
    Unknown,
}

/// RFC 9112 §6.3 for a request.
pub fn request_body(h: &Head) -> Result<BodyLen, HeadError> {
    if let Some(e) = h.framing_error {
        return Err(HeadError::Framing(e));
    }
    if h.transfer_encoding {
        if h.content_length.is_some() {
            // A request with both is a smuggling vector (RFC 9112 §6.1): refuse to guess.
            return Err(HeadError::Framing(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        if !h.chunked {
            return Err(HeadError::Framing(
                "Transfer-Encoding without final chunked",
            ));
        }
        return Ok(BodyLen::Chunked);
    }
    Ok(match h.content_length {
        Some(0) | None => BodyLen::None,
        Some(n) => BodyLen::Length(n),
    })
}

/// RFC 9112 §6.3 for a response to `method` (None when the request was not seen).
pub fn response_body(h: &Head, method: Option<&str>) -> BodyLen {
    let status = h.status.unwrap_or(0);
    if method == Some("HEAD") || (100..200).contains(&status) || status == 204 || status == 304 {
        return BodyLen::None;
    }
    if method == Some("CONNECT") && (200..300).contains(&status) {
        return BodyLen::None;
    }
    if h.framing_error.is_some() && !h.transfer_encoding {
        return BodyLen::Unknown;
    }
    if h.transfer_encoding {
        return if h.chunked {
            BodyLen::Chunked
        } else {
            BodyLen::UntilClose
        };
    }
    match h.content_length {
        Some(0) => BodyLen::None,
        Some(n) => BodyLen::Length(n),
        None => BodyLen::UntilClose,
    }
}

/// Incremental chunked-body decoder (RFC 9112 §7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunked {
    /// Reading a chunk-size line (size, optional extensions).
    Size {
        line: Vec<u8>,
    },
    Data {
        left: u64,
    },
    /// The CRLF after chunk data; `seen` counts bytes of it.
    DataEnd {
        seen: u8,
    },
    /// Trailer fields after the last chunk; `line` is the current line.
    Trailer {
        line: Vec<u8>,
        total: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkStep {
    /// Consumed `n` bytes, of which `body` are body data; need more input.
    More { n: usize, body: u64 },
    /// The body ended after `n` bytes.
    Done { n: usize, body: u64 },
    /// Malformed after `n` bytes (the offending byte not included).
    Error {
        n: usize,
        body: u64,
        why: &'static str,
    },
}

/// Longest chunk-size line or trailer section accepted (bounds per-connection memory).
const MAX_CHUNK_LINE: usize = 4096;

impl Chunked {
    pub fn new() -> Self {
        Chunked::Size { line: Vec::new() }
    }

    /// `strict`: chunk extensions must be well-formed (`;name[=token|"quoted"]`).
    pub fn step(&mut self, data: &[u8], max_trailer: usize, strict: bool) -> ChunkStep {
        let mut i = 0;
        let mut body = 0u64;
        while i < data.len() {
            match self {
                Chunked::Size { line } => {
                    let b = data[i];
                    i += 1;
                    if b == b'\n' {
                        if line.last() != Some(&b'\r') {
                            return ChunkStep::Error {
                                n: i,
                                body,
                                why: "chunk size line not ended by CRLF",
                            };
                        }
                        line.pop();
                        let size = match parse_chunk_size(line, strict) {
                            Ok(s) => s,
                            Err(why) => return ChunkStep::Error { n: i, body, why },
                        };
                        *self = if size == 0 {
                            Chunked::Trailer {
                                line: Vec::new(),
                                total: 0,
                            }
                        } else {
                            Chunked::Data { left: size }
                        };
                    } else {
                        if line.len() >= MAX_CHUNK_LINE {
                            return ChunkStep::Error {
                                n: i,
                                body,
                                why: "chunk size line too long",
                            };
                        }
                        line.push(b);
                    }
                }
                Chunked::Data { left } => {
                    let take = (*left).min((data.len() - i) as u64) as usize;
                    i += take;
                    body += take as u64;
                    *left -= take as u64;
                    if *left == 0 {
                        *self = Chunked::DataEnd { seen: 0 };
                    }
                }
                Chunked::DataEnd { seen } => {
                    let want = if *seen == 0 { b'\r' } else { b'\n' };
                    if data[i] != want {
                        return ChunkStep::Error {
                            n: i,
                            body,
                            why: "chunk data not followed by CRLF",
                        };
                    }
                    i += 1;
                    *seen += 1;
                    if *seen == 2 {
                        *self = Chunked::Size { line: Vec::new() };
                    }
                }
                Chunked::Trailer { line, total } => {
                    let b = data[i];
                    i += 1;
                    *total += 1;
                    if *total > max_trailer {
                        return ChunkStep::Error {
                            n: i,
                            body,
                            why: "trailer section too long",
                        };
                    }
                    if b == b'\n' {
                        if line.last() != Some(&b'\r') {
                            return ChunkStep::Error {
                                n: i,
                                body,
                                why: "trailer line not ended by CRLF",
                            };
                        }
                        if line.len() == 1 {
                            return ChunkStep::Done { n: i, body };
                        }
                        line.clear();
                    } else {
                        line.push(b);
                    }
                }
            }
        }
        ChunkStep::More { n: i, body }
    }
}

impl Default for Chunked {
    fn default() -> Self {
        Self::new()
    }
}

/// `chunk-size [ chunk-ext ]`: hex digits, then optional `;name[=value]` extensions.
fn parse_chunk_size(line: &[u8], strict: bool) -> Result<u64, &'static str> {
    let mut size: u64 = 0;
    let mut digits = 0;
    let mut rest = line;
    while let Some((&b, tail)) = rest.split_first() {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => break,
        };
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(d)))
            .ok_or("chunk size overflows")?;
        digits += 1;
        rest = tail;
    }
    if digits == 0 {
        return Err("invalid chunk size");
    }
    // Whitespace before extensions is tolerated by deployed parsers only in lenient modes.
    match rest.first() {
        None => Ok(size),
        Some(b';') if !strict || valid_extensions(rest) => Ok(size),
        Some(b';') => Err("invalid chunk extension"),
        _ => Err("invalid character after chunk size"),
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `*( ";" token [ "=" ( token / quoted-string ) ] )` (RFC 9112 §7.1.1).
fn valid_extensions(mut b: &[u8]) -> bool {
    while let Some((&b';', rest)) = b.split_first() {
        let n = rest.iter().take_while(|c| is_tchar(**c)).count();
        if n == 0 {
            return false;
        }
        b = &rest[n..];
        if let Some((&b'=', v)) = b.split_first() {
            if v.first() == Some(&b'"') {
                let mut i = 1;
                loop {
                    match v.get(i) {
                        None => return false,
                        Some(b'\\') => i += 2,
                        Some(b'"') => break,
                        Some(_) => i += 1,
                    }
                }
                b = &v[i + 1..];
            } else {
                let n = v.iter().take_while(|c| is_tchar(**c)).count();
                if n == 0 {
                    return false;
                }
                b = &v[n..];
            }
        }
    }
    b.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_forms() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nX", 0), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\nX", 0), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
    }

    #[test]
    fn chunked_incremental() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 1..body.len() {
            let mut c = Chunked::new();
            let mut got = 0;
            let mut end = None;
            for (base, part) in [(0, &body[..split]), (split, &body[split..])] {
                match c.step(part, 1024, true) {
                    ChunkStep::More { body, .. } => got += body,
                    ChunkStep::Done { n, body } => {
                        got += body;
                        end = Some(base + n);
                        break;
                    }
                    ChunkStep::Error { why, .. } => panic!("{why}"),
                }
            }
            assert_eq!((got, end), (9, Some(body.len() - 4)), "split {split}");
        }
    }

    #[test]
    fn chunk_size_overflow_is_an_error() {
        let mut c = Chunked::new();
        assert!(matches!(
            c.step(b"10000000000000000\r\nX", 1024, true),
            ChunkStep::Error { n: 19, .. }
        ));
    }

    #[test]
    fn framing_rules() {
        let h = parse_head(
            Role::Request,
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            false,
            false,
        )
        .unwrap();
        assert_eq!(request_body(&h), Ok(BodyLen::Length(5)));
        let h = parse_head(
            Role::Request,
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            false,
            false,
        )
        .unwrap();
        assert!(request_body(&h).is_err());
        let h = parse_head(
            Role::Response,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            false,
            false,
        )
        .unwrap();
        assert_eq!(response_body(&h, Some("GET")), BodyLen::Chunked);
        assert_eq!(response_body(&h, Some("HEAD")), BodyLen::None);
        assert!(parse_head(Role::Request, b"GET  HTTP/1.1\r\n\r\n", false, false).is_err());
        let h = parse_head(
            Role::Request,
            b"CONNECT a:25 / HTTP/1.0\r\nX: y\r\n\r\n",
            false,
            true,
        )
        .unwrap();
        assert_eq!(
            (h.target.as_deref(), h.version.as_str()),
            (Some("a:25 /"), "HTTP/1.0")
        );
        let h = parse_head(Role::Request, b"GET  HTTP/1.1\r\n\r\n", false, true).unwrap();
        assert_eq!(h.target.as_deref(), Some(""));
        let (h, n) = http09_request(b"GET /x\r\n").unwrap();
        assert_eq!((h.version.as_str(), n), ("HTTP/0.9", 8));
    }
}
