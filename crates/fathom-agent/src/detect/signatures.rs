//! Signatures: a small YAML rule format over the pipeline's records, with per-source
//! thresholds. Documented in docs/shield.md ("Signature rules").
//!
//! ```yaml
//! rules:
//!   - id: etc-passwd
//!     description: path traversal to /etc/passwd
//!     severity: high                 # info | low | medium | high | critical (default medium)
//!     match:
//!       http_path: "/etc/passwd"      # regex on the HTTP path
//!   - id: syn-burst
//!     match:
//!       tcp_flags: [SYN]              # a flow whose first packet carries exactly these flags
//!     threshold: {count: 101, window: 1s}   # per source: the 101st within 1 s alerts
//! ```
//!
//! Matchers (all given ones must hold): `http_path`, `http_host`, `user_agent`, `tls_sni`
//! (regexes), `http_method` (exact, case-insensitive), `dns_suffix` (query name ends with it
//! on a label boundary, case-insensitive), `contains` (text, or `hex:` bytes, found in the
//! record's decoded request fields), `tcp_flags` (flow starts), `dst_port`. A file is all or
//! nothing: the first bad rule rejects it with its line and the reason.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use fathom_model::alert::kind;
use fathom_model::l7::L7Detail;
use fathom_model::{Alert, Endpoint, FlowEvent, Record, Severity, TcpFlags, Timestamp};
use regex::Regex;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    severity: Option<Severity>,
    #[serde(rename = "match")]
    matcher: MatchSpec,
    #[serde(default)]
    threshold: Option<ThresholdSpec>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MatchSpec {
    http_path: Option<String>,
    http_host: Option<String>,
    http_method: Option<String>,
    user_agent: Option<String>,
    tls_sni: Option<String>,
    dns_suffix: Option<String>,
    contains: Option<String>,
    tcp_flags: Option<Vec<String>>,
    dst_port: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdSpec {
    count: u32,
    #[serde(with = "humantime_serde")]
    window: Duration,
}

/// A rule file that did not load: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: line {line}: {reason}")]
pub struct RuleError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

#[derive(Debug)]
pub struct Rule {
    pub id: String,
    pub description: Option<String>,
    pub severity: Severity,
    http_path: Option<Regex>,
    http_host: Option<Regex>,
    http_method: Option<String>,
    user_agent: Option<Regex>,
    tls_sni: Option<Regex>,
    dns_suffix: Option<String>,
    contains: Option<Vec<u8>>,
    tcp_flags: Option<u8>,
    dst_port: Option<u16>,
    count: u32,
    window_ns: u64,
}

/// The line (1-based) of the first line at or after `from` that contains `needle`.
fn line_of(text: &str, needle: &str, from: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .unwrap_or(from.max(1))
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let h: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if h.is_empty() || !h.len().is_multiple_of(2) {
        return Err(format!(
            "contains: hex pattern {s:?} needs an even number of hex digits"
        ));
    }
    (0..h.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&h[i..i + 2], 16)
                .map_err(|_| format!("contains: {:?} is not hex", &h[i..i + 2]))
        })
        .collect()
}

/// Parse and check a rule file. All or nothing.
pub fn parse_rules(file: &str, text: &str) -> Result<Vec<Rule>, RuleError> {
    let err = |line: usize, reason: String| RuleError {
        file: file.to_string(),
        line,
        reason,
    };
    let spec: FileSpec = serde_norway::from_str(text).map_err(|e| {
        let msg = e.to_string();
        let mut line = e.location().map(|l| l.line()).unwrap_or(1);
        // The parser points at the mapping; point at the offending key itself.
        if let Some(field) = msg
            .split("unknown field `")
            .nth(1)
            .and_then(|r| r.split('`').next())
        {
            line = line_of(text, &format!("{field}:"), line);
        }
        err(line, msg)
    })?;
    let mut out: Vec<Rule> = Vec::new();
    let mut from = 1;
    for r in spec.rules {
        let at = line_of(text, &format!("id: {}", r.id), from);
        from = at + 1;
        let field_err =
            |field: &str, reason: String| err(line_of(text, &format!("{field}:"), at), reason);
        if r.id.trim().is_empty() || r.id.contains(char::is_whitespace) {
            return Err(err(at, format!("rule id {:?} must be one word", r.id)));
        }
        if out.iter().any(|o| o.id == r.id) {
            return Err(err(at, format!("duplicate rule id {:?}", r.id)));
        }
        let m = &r.matcher;
        let re = |field: &str, v: &Option<String>| -> Result<Option<Regex>, RuleError> {
            v.as_deref()
                .map(|p| {
                    Regex::new(p).map_err(|e| {
                        field_err(field, format!("rule {}: {field}: invalid regex: {e}", r.id))
                    })
                })
                .transpose()
        };
        let tcp_flags = match &m.tcp_flags {
            None => None,
            Some(names) => Some(
                TcpFlags::from_names(names.iter().map(String::as_str))
                    .map_err(|e| field_err("tcp_flags", format!("rule {}: {e}", r.id)))?
                    .0,
            ),
        };
        let contains = match m.contains.as_deref() {
            None => None,
            Some("") => {
                return Err(field_err(
                    "contains",
                    format!("rule {}: contains: empty pattern", r.id),
                ))
            }
            Some(s) => Some(match s.strip_prefix("hex:") {
                Some(h) => parse_hex(h)
                    .map_err(|e| field_err("contains", format!("rule {}: {e}", r.id)))?,
                None => s.as_bytes().to_vec(),
            }),
        };
        if let Some(s) = &m.dns_suffix {
            if s.trim_matches('.').is_empty() {
                return Err(field_err(
                    "dns_suffix",
                    format!("rule {}: dns_suffix is empty", r.id),
                ));
            }
        }
        let any = m.http_path.is_some()
            || m.http_host.is_some()
            || m.http_method.is_some()
            || m.user_agent.is_some()
            || m.tls_sni.is_some()
            || m.dns_suffix.is_some()
            || contains.is_some()
            || tcp_flags.is_some();
        if !any {
            return Err(field_err(
                "match",
                format!(
                    "rule {}: match needs at least one matcher besides dst_port",
                    r.id
                ),
            ));
        }
        let (count, window) = match &r.threshold {
            None => (1, Duration::from_secs(1)),
            Some(t) => {
                if t.count == 0 {
                    return Err(field_err(
                        "count",
                        format!("rule {}: threshold count must be at least 1", r.id),
                    ));
                }
                if t.window.is_zero() || t.window > Duration::from_secs(3600) {
                    return Err(field_err(
                        "window",
                        format!("rule {}: threshold window must be within (0, 1h]", r.id),
                    ));
                }
                (t.count, t.window)
            }
        };
        out.push(Rule {
            id: r.id.clone(),
            description: r.description.clone(),
            severity: r.severity.unwrap_or(Severity::Medium),
            http_path: re("http_path", &m.http_path)?,
            http_host: re("http_host", &m.http_host)?,
            http_method: m.http_method.as_ref().map(|s| s.to_ascii_uppercase()),
            user_agent: re("user_agent", &m.user_agent)?,
            tls_sni: re("tls_sni", &m.tls_sni)?,
            dns_suffix: m
                .dns_suffix
                .as_ref()
                .map(|s| s.trim_matches('.').to_ascii_lowercase()),
            contains,
            tcp_flags,
            dst_port: m.dst_port,
            count,
            window_ns: window.as_nanos() as u64,
        });
    }
    Ok(out)
}

pub fn load_rules(path: &std::path::Path) -> Result<Vec<Rule>, RuleError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| RuleError {
        file: file.clone(),
        line: 0,
        reason: format!("cannot read: {e}"),
    })?;
    parse_rules(&file, &text)
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() <= hay.len() && hay.windows(needle.len()).any(|w| w == needle)
}

impl Rule {
    /// Does `r` match? (Thresholds are applied by the engine.)
    pub fn matches(&self, r: &Record) -> bool {
        let dst_port = match r {
            Record::Flow(f) => f.destination.port,
            Record::L7(l) => l.destination.port,
            _ => return false,
        };
        if self.dst_port.is_some_and(|p| p != dst_port) {
            return false;
        }
        if let Some(want) = self.tcp_flags {
            let Record::Flow(f) = r else { return false };
            let first = f.l4.tcp_flags_out.unwrap_or_default().0 & 0x3f;
            if f.event != FlowEvent::Start || first != want {
                return false;
            }
        }
        let l7_needed = self.http_path.is_some()
            || self.http_host.is_some()
            || self.http_method.is_some()
            || self.user_agent.is_some()
            || self.tls_sni.is_some()
            || self.dns_suffix.is_some()
            || self.contains.is_some();
        if !l7_needed {
            return true;
        }
        let Record::L7(l) = r else { return false };
        let d = &l.exchange.detail;
        let http = match d {
            L7Detail::Http(h) | L7Detail::Http2(h) => Some(h),
            _ => None,
        };
        let re_on = |re: &Option<Regex>, v: Option<&str>| match re {
            None => true,
            Some(re) => v.is_some_and(|v| re.is_match(v)),
        };
        if !re_on(&self.http_path, http.and_then(|h| h.path.as_deref()))
            || !re_on(&self.http_host, http.and_then(|h| h.host.as_deref()))
            || !re_on(&self.user_agent, http.and_then(|h| h.user_agent.as_deref()))
        {
            return false;
        }
        if let Some(m) = &self.http_method {
            if !http
                .and_then(|h| h.method.as_deref())
                .is_some_and(|x| x.eq_ignore_ascii_case(m))
            {
                return false;
            }
        }
        if self.tls_sni.is_some() {
            let sni = match d {
                L7Detail::Tls(t) => t.sni.as_deref(),
                _ => None,
            };
            if !re_on(&self.tls_sni, sni) {
                return false;
            }
        }
        if let Some(suffix) = &self.dns_suffix {
            let L7Detail::Dns(q) = d else { return false };
            let Some(name) = q.qname.as_deref() else {
                return false;
            };
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if !(name == *suffix || name.ends_with(&format!(".{suffix}"))) {
                return false;
            }
        }
        if let Some(pat) = &self.contains {
            // The decoded request as text: the pipeline keeps fields, not raw payloads.
            let text = serde_json::to_vec(d).unwrap_or_default();
            let raw_fields: Vec<&str> = match d {
                L7Detail::Http(h) | L7Detail::Http2(h) => [&h.path, &h.host, &h.user_agent]
                    .iter()
                    .filter_map(|o| o.as_deref())
                    .collect(),
                L7Detail::Dns(q) => q.qname.as_deref().into_iter().collect(),
                _ => Vec::new(),
            };
            if !raw_fields.iter().any(|f| find(f.as_bytes(), pat)) && !find(&text, pat) {
                return false;
            }
        }
        true
    }
}

/// Rules plus per-(rule, source) sliding windows.
pub struct SignatureEngine {
    rules: Vec<Rule>,
    hits: HashMap<(usize, IpAddr), VecDeque<u64>>,
    last_alert: HashMap<(usize, IpAddr), u64>,
    max_tracked: usize,
}

impl SignatureEngine {
    pub fn new(rules: Vec<Rule>, max_tracked: usize) -> Self {
        SignatureEngine {
            rules,
            hits: HashMap::new(),
            last_alert: HashMap::new(),
            max_tracked,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn observe(&mut self, r: &Record, node: &str, out: &mut Vec<Alert>) {
        let (src, dst, time): (&Endpoint, &Endpoint, Timestamp) = match r {
            Record::Flow(f) => (&f.source, &f.destination, f.time),
            Record::L7(l) => (&l.source, &l.destination, l.time),
            _ => return,
        };
        let now = time.as_nanos();
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.matches(r) {
                continue;
            }
            let key = (i, src.ip);
            if !self.hits.contains_key(&key) && self.hits.len() >= self.max_tracked {
                let rules = &self.rules;
                self.hits.retain(|(ri, _), q| {
                    let w = rules[*ri].window_ns;
                    q.back().is_some_and(|t| now.saturating_sub(*t) < w)
                });
                if self.hits.len() >= self.max_tracked {
                    continue;
                }
            }
            let q = self.hits.entry(key).or_default();
            q.push_back(now);
            // Strictly within the window: `count` matches spread over exactly `window` do not fire.
            while q
                .front()
                .is_some_and(|t| now.saturating_sub(*t) >= rule.window_ns)
            {
                q.pop_front();
            }
            if (q.len() as u32) < rule.count {
                continue;
            }
            let n = q.len();
            q.clear(); // the next alert needs a fresh `count` within the window
            if self
                .last_alert
                .get(&key)
                .is_some_and(|t| now.saturating_sub(*t) < rule.window_ns)
            {
                continue;
            }
            self.last_alert.insert(key, now);
            let window = rule.window_ns as f64 / 1e9;
            let who = src
                .pod_name()
                .map(|p| format!("{p} ({})", src.ip))
                .unwrap_or_else(|| src.ip.to_string());
            let mut a = Alert {
                time,
                kind: kind::SIGNATURE.into(),
                severity: rule.severity,
                summary: format!(
                    "signature {} by {who}{}",
                    rule.id,
                    rule.description
                        .as_deref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                ),
                source: Some(Endpoint {
                    port: 0,
                    ..src.clone()
                }),
                destination: Some(dst.clone()),
                evidence: Default::default(),
                details: Default::default(),
                window_secs: Some(window),
                action: None,
                node: node.into(),
            };
            a.evidence.insert("matches".into(), n as f64);
            a.evidence.insert("threshold".into(), rule.count as f64);
            a.details.insert("rule".into(), rule.id.clone());
            a.details.insert("block".into(), src.ip.to_string());
            out.push(a);
        }
    }
}
