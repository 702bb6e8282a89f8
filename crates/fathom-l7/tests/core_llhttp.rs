//! HTTP/1 parser against llhttp's test suite (nodejs/llhttp test/*.md): for every case that
//! is neither lenient (opt-in leniency flags) nor a pause test, the verdict (accepted or
//! rejected) and the method, URL, status, version and headers of each message must agree.
//! Our parser runs in strict mode here, which is llhttp's default; replay uses the lenient
//! request-line reading (see `Http1Limits::lenient`).
//!
//! Every case is also fed one byte at a time and must give the same result as one chunk.

mod core_common;

use core_common::corpus;
use fathom_l7::http1::framing::Role;
use fathom_l7::http1::{parse_stream, StreamMode, StreamOutcome};

/// Cases where we deliberately differ from llhttp, with the reason.
const DELIBERATE: &[(&str, &str)] = &[
    ("SOURCE request with ICE", "Icecast (ICE/1.0) is not HTTP; claiming it would report it as HTTP"),
    ("OPTIONS request with RTSP", "RTSP is not HTTP (same reason)"),
    ("ANNOUNCE request with RTSP", "RTSP is not HTTP (same reason)"),
    ("RTSP response", "RTSP is not HTTP (same reason)"),
    ("ICE response", "Icecast is not HTTP (same reason)"),
    ("PRI request HTTP2", "the HTTP/2 connection preface belongs to the HTTP/2 parser; HTTP/1 refuses it so that inference hands the connection over"),
    (
        "Content-Length reset when no body is received",
        "the request variant relies on llhttp's skipBody callback ignoring a declared request body, which no HTTP message can ask for",
    ),
    ("HTTP version 0.9", "\"HTTP/0.9\" status lines do not exist (0.9 responses have no status line); only HTTP/1.x status lines are accepted"),
];

#[derive(Debug, Default, Clone)]
struct Expected {
    method: Option<String>,
    url: String,
    status: Option<u16>,
    version: Option<String>,
    headers: Vec<(String, String, bool)>,
    headers_complete: bool,
}

struct Case {
    file: String,
    title: String,
    kind: String,
    skip_body: bool,
    input: Vec<u8>,
    log: String,
}

/// README: drop the trailing newline, remove backslash-newline, newline becomes CRLF, then
/// unescape `\r \n \t \f \xNN`.
fn input_bytes(block: &str) -> Vec<u8> {
    let s = block.strip_suffix('\n').unwrap_or(block);
    let s = s.replace("\\\n", "").replace('\n', "\r\n");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'r' => {
                    out.push(b'\r');
                    i += 2;
                    continue;
                }
                b'n' => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                b't' => {
                    out.push(b'\t');
                    i += 2;
                    continue;
                }
                b'f' => {
                    out.push(0x0c);
                    i += 2;
                    continue;
                }
                b'x' if i + 3 < b.len() => {
                    if let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                        out.push(v);
                        i += 4;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn cases(root: &std::path::Path) -> Vec<Case> {
    let mut out = Vec::new();
    let mut files: Vec<_> = ["request", "response"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(root.join(d))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
        })
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let default_kind = if f.to_string_lossy().contains("/request/") {
            "request"
        } else {
            "response"
        };
        let mut title = String::new();
        let mut meta = String::new();
        let mut lines = text.lines().peekable();
        let mut pending_input: Option<String> = None;
        while let Some(line) = lines.next() {
            if line.starts_with('#') {
                title = line.trim_start_matches('#').trim().to_string();
                meta.clear();
                pending_input = None;
            } else if line.starts_with("<!-- meta=") {
                meta = line.to_string();
            } else if line.starts_with("```http") || line.starts_with("```log") {
                let mut block = String::new();
                for l in lines.by_ref() {
                    if l.starts_with("```") {
                        break;
                    }
                    block.push_str(l);
                    block.push('\n');
                }
                if line.starts_with("```http") {
                    pending_input = Some(block);
                } else if let Some(input) = pending_input.take() {
                    let kind = meta
                        .split("\"type\":")
                        .nth(1)
                        .and_then(|r| r.split('"').nth(1))
                        .unwrap_or(default_kind)
                        .to_string();
                    out.push(Case {
                        file: f
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        title: title.clone(),
                        kind,
                        skip_body: meta.contains("\"skipBody\": true"),
                        input: input_bytes(&input),
                        log: block,
                    });
                    if meta.contains("\"pause\"") {
                        if let Some(c) = out.last_mut() {
                            c.kind = "pause".into();
                        }
                    }
                }
            }
        }
    }
    out
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    let s = s.strip_prefix('"').unwrap_or(s);
    let s = s.strip_suffix('"').unwrap_or(s);
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            // The log prints bytes verbatim except control characters.
            let c = match b[i + 1] {
                b'r' => Some(b'\r'),
                b'n' => Some(b'\n'),
                b't' => Some(b'\t'),
                b'f' => Some(0x0c),
                b'x' if i + 3 < b.len() => {
                    if let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                        out.push(v);
                        i += 4;
                        continue;
                    }
                    None
                }
                _ => None,
            };
            if let Some(c) = c {
                out.push(c);
                i += 2;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Messages from llhttp's event log, and whether it rejected the input.
fn expected(log: &str) -> (Vec<Expected>, bool) {
    let mut msgs: Vec<Expected> = Vec::new();
    let mut rejected = false;
    let mut value_done = true;
    for line in log.lines() {
        let rest = line.split_once(' ').map(|x| x.1).unwrap_or_default();
        if rest == "message begin" {
            msgs.push(Expected::default());
            value_done = true;
            continue;
        }
        if let Some(e) = rest.strip_prefix("error code=") {
            // 21/22/23 are pauses (HPE_PAUSED, pause on CONNECT/Upgrade, on h2 upgrade): the
            // input was accepted and handed to the application.
            let code = e.split(' ').next().unwrap_or_default();
            rejected |= !matches!(code, "21" | "22" | "23");
            continue;
        }
        if let Some(f) = rest.strip_prefix("finish=") {
            // The harness prints 0 (nothing pending), 1 (finishing completed a message) or
            // 2 (llhttp_finish failed).
            rejected |= f.trim() == "2";
            continue;
        }
        let Some(m) = msgs.last_mut() else { continue };
        if let Some(h) = rest.strip_prefix("headers complete ") {
            // Header spans after this point are chunked-body trailers, not head fields.
            m.headers_complete = true;
            for kv in h.split(' ') {
                if let Some(v) = kv.strip_prefix("status=") {
                    m.status = v.parse().ok();
                }
                if let Some(v) = kv.strip_prefix("v=") {
                    m.version = Some(format!("HTTP/{}", v.replace('/', ".")));
                }
            }
            continue;
        }
        if rest == "header_value complete" {
            value_done = true;
            if let Some(h) = m.headers.last_mut() {
                h.2 = true;
            }
            continue;
        }
        let Some((span, val)) = rest
            .split_once("span[")
            .and_then(|(_, r)| r.split_once("]="))
        else {
            continue;
        };
        if m.headers_complete && span.starts_with("header") {
            continue;
        }
        let val = unquote(val);
        match span {
            "method" => m.method.get_or_insert_with(String::new).push_str(&val),
            "url" => m.url.push_str(&val),
            "header_field" => {
                if value_done {
                    m.headers.push((String::new(), String::new(), false));
                    value_done = false;
                }
                if let Some(h) = m.headers.last_mut() {
                    h.0.push_str(&val);
                }
            }
            "header_value" => {
                if let Some(h) = m.headers.last_mut() {
                    h.1.push_str(&val);
                }
            }
            _ => {}
        }
    }
    (msgs, rejected)
}

fn compare(want: &[Expected], got: &StreamOutcome, role: Role) -> Result<(), String> {
    for (i, w) in want.iter().enumerate().filter(|(_, w)| w.headers_complete) {
        let Some(g) = got.messages.get(i) else {
            return Err(format!("message {i} missing"));
        };
        let h = &g.head;
        if role == Role::Request {
            if w.method != h.method {
                return Err(format!("method {:?} vs {:?}", w.method, h.method));
            }
            if Some(&w.url) != h.target.as_ref() {
                return Err(format!("url {:?} vs {:?}", w.url, h.target));
            }
        } else if w.status != h.status {
            return Err(format!("status {:?} vs {:?}", w.status, h.status));
        }
        if w.version.as_deref() != Some(h.version.as_str()) {
            return Err(format!("version {:?} vs {:?}", w.version, h.version));
        }
        let wh: Vec<(String, String)> = w
            .headers
            .iter()
            .map(|(k, v, _)| (k.clone(), v.trim_end_matches([' ', '\t']).to_string()))
            .collect();
        if wh != h.headers {
            return Err(format!("headers {:?} vs {:?}", wh, h.headers));
        }
    }
    Ok(())
}

#[test]
fn llhttp_conformance() {
    let Some(corpus) = corpus() else { return };
    let all = cases(&corpus.join("llhttp/test"));
    let mut considered = 0;
    let mut verdict_agree = 0;
    let mut full_agree = 0;
    let mut deliberate = 0;
    let mut chunking_diff = Vec::new();
    let mut report = Vec::new();
    for c in &all {
        let role = match c.kind.as_str() {
            "request" | "request-finish" => Role::Request,
            "response" | "response-finish" => Role::Response,
            // lenient-* (opt-in leniency) and pause cases are out of scope.
            _ => continue,
        };
        considered += 1;
        let mode = StreamMode {
            finish: c.kind.ends_with("-finish"),
            head: c.skip_body,
            lenient: false,
        };
        let got = parse_stream(role, &c.input, c.input.len().max(1), mode);
        let bytewise = parse_stream(role, &c.input, 1, mode);
        if bytewise.messages != got.messages || bytewise.error.is_some() != got.error.is_some() {
            chunking_diff.push(format!("{} / {}", c.file, c.title));
        }
        let (want, rejected) = expected(&c.log);
        let mine_rejected = got.error.is_some();
        let verdict_ok = rejected == mine_rejected;
        verdict_agree += verdict_ok as usize;
        let fields = compare(&want, &got, role);
        if verdict_ok && fields.is_ok() {
            full_agree += 1;
        } else if DELIBERATE.iter().any(|(t, _)| *t == c.title) {
            deliberate += 1;
        } else {
            report.push(format!(
                "{} / {}: llhttp {}, fathom {}{}",
                c.file,
                c.title,
                if rejected { "rejects" } else { "accepts" },
                match &got.error {
                    Some(e) => format!("rejects ({e})"),
                    None => "accepts".into(),
                },
                fields.err().map(|e| format!("; {e}")).unwrap_or_default()
            ));
        }
    }
    println!(
        "llhttp: {considered} cases (non-lenient, non-pause); verdict agrees {verdict_agree}/{considered}; verdict and fields agree {full_agree}/{considered}; deliberate differences {deliberate}"
    );
    for r in &report {
        println!("  disagree: {r}");
    }
    assert!(
        chunking_diff.is_empty(),
        "byte-at-a-time differs from one chunk: {chunking_diff:?}"
    );
    assert!(considered >= 150, "llhttp cases found: {considered}");
    // Every case agrees or is a documented deliberate difference.
    assert!(
        report.is_empty(),
        "{} undocumented disagreements",
        report.len()
    );
    assert!(
        full_agree * 100 >= considered * 95,
        "agreement {full_agree}/{considered}"
    );
}

/// Debugging aid: `LLHTTP_CASE='title' cargo test --test core_llhttp case -- --ignored --nocapture`.
#[test]
#[ignore]
fn case() {
    let (Some(corpus), Ok(title)) = (corpus(), std::env::var("LLHTTP_CASE")) else {
        return;
    };
    for c in cases(&corpus.join("llhttp/test"))
        .iter()
        .filter(|c| c.title == title)
    {
        let role = if c.kind.starts_with("request") {
            Role::Request
        } else {
            Role::Response
        };
        let mode = StreamMode {
            finish: c.kind.ends_with("-finish"),
            head: c.skip_body,
            lenient: false,
        };
        println!("input {:?}", String::from_utf8_lossy(&c.input));
        println!(
            "whole {:#?}",
            parse_stream(role, &c.input, c.input.len(), mode)
        );
        println!("bytes {:#?}", parse_stream(role, &c.input, 1, mode));
        println!("llhttp {:#?}", expected(&c.log));
    }
}
