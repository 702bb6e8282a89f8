//! L7 selection for `fathom observe` (and every other place a `FlowFilter` is used): protocol,
//! HTTP status/method/path, DNS query name. Any of these set means "L7 records only": flows
//! and drops never match them. Kinds AND together, values of one kind OR, as elsewhere.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::l7::{L7Detail, L7Protocol, L7Record};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum L7FilterError {
    #[error("bad HTTP status {0:?}: expected a code (404) or a class (5+, 5xx)")]
    BadStatus(String),
    #[error("bad HTTP path regex {0:?}: {1}")]
    BadRegex(String, String),
    #[error("bad L7 protocol {0:?}: expected http, http2, grpc, dns, redis, kafka, postgres, mysql or tls")]
    BadProtocol(String),
}

/// `404` (exact) or `5+` / `5xx` (any code of the class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Exact(u16),
    Class(u16),
}

impl StatusMatch {
    pub fn parse(s: &str) -> Result<Self, L7FilterError> {
        let bad = || L7FilterError::BadStatus(s.into());
        let t = s.trim();
        if let Some(c) = t.strip_suffix('+').or_else(|| t.strip_suffix("xx")) {
            let c: u16 = c.parse().map_err(|_| bad())?;
            return if (1..=5).contains(&c) {
                Ok(StatusMatch::Class(c))
            } else {
                Err(bad())
            };
        }
        match t.parse::<u16>() {
            Ok(c) if (100..=599).contains(&c) => Ok(StatusMatch::Exact(c)),
            _ => Err(bad()),
        }
    }

    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Exact(c) => status == c,
            StatusMatch::Class(c) => status / 100 == c,
        }
    }
}

impl std::fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusMatch::Exact(c) => write!(f, "{c}"),
            StatusMatch::Class(c) => write!(f, "{c}+"),
        }
    }
}

impl Serialize for StatusMatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StatusMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        StatusMatch::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A compiled path regex, compared and serialized as its source text.
#[derive(Debug, Clone)]
pub struct PathRegex(regex::Regex);

impl PathRegex {
    pub fn parse(s: &str) -> Result<Self, L7FilterError> {
        regex::RegexBuilder::new(s)
            .size_limit(1 << 20)
            .build()
            .map(PathRegex)
            .map_err(|e| L7FilterError::BadRegex(s.into(), e.to_string()))
    }

    pub fn is_match(&self, path: &str) -> bool {
        self.0.is_match(path)
    }
}

impl PartialEq for PathRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for PathRegex {}

impl Serialize for PathRegex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for PathRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PathRegex::parse(&s).map_err(serde::de::Error::custom)
    }
}

pub fn parse_l7_protocol(s: &str) -> Result<L7Protocol, L7FilterError> {
    L7Protocol::parse(s).ok_or_else(|| L7FilterError::BadProtocol(s.into()))
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct L7Filter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocol: Vec<L7Protocol>,
    /// HTTP/1, HTTP/2 (and gRPC's HTTP status).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_status: Vec<StatusMatch>,
    /// Compared without case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_method: Vec<String>,
    /// Regexes over the request target (path and query); gRPC: `/service/method`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_path: Vec<PathRegex>,
    /// Query names, without case and trailing dot; `*.example.com` matches below it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_query: Vec<String>,
}

fn any_or_empty<T>(items: &[T], f: impl Fn(&T) -> bool) -> bool {
    items.is_empty() || items.iter().any(f)
}

fn dns_name_matches(pattern: &str, name: &str) -> bool {
    let p = pattern.trim_end_matches('.').to_ascii_lowercase();
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    match p.strip_prefix("*.") {
        Some(suffix) => n.len() > suffix.len() && n.ends_with(&format!(".{suffix}")),
        None => p == n,
    }
}

impl L7Filter {
    pub fn is_empty(&self) -> bool {
        *self == L7Filter::default()
    }

    pub fn matches(&self, r: &L7Record) -> bool {
        let d = &r.exchange.detail;
        let (status, method, path) = match d {
            L7Detail::Http(h) | L7Detail::Http2(h) => (h.status, h.method.clone(), h.path.clone()),
            L7Detail::Grpc(g) => (
                g.http_status,
                Some("POST".to_string()),
                Some(format!(
                    "/{}/{}",
                    g.service.as_deref().unwrap_or(""),
                    g.method.as_deref().unwrap_or("")
                )),
            ),
            _ => (None, None, None),
        };
        let qname = match d {
            L7Detail::Dns(x) => x.qname.as_deref(),
            _ => None,
        };
        any_or_empty(&self.protocol, |p| *p == d.protocol())
            && any_or_empty(&self.http_status, |s| status.is_some_and(|c| s.matches(c)))
            && any_or_empty(&self.http_method, |m| {
                method.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(m))
            })
            && any_or_empty(&self.http_path, |re| {
                path.as_deref().is_some_and(|p| re.is_match(p))
            })
            && any_or_empty(&self.dns_query, |q| {
                qname.is_some_and(|n| dns_name_matches(q, n))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_forms() {
        assert_eq!(StatusMatch::parse("404"), Ok(StatusMatch::Exact(404)));
        assert_eq!(StatusMatch::parse("5+"), Ok(StatusMatch::Class(5)));
        assert_eq!(StatusMatch::parse("4xx"), Ok(StatusMatch::Class(4)));
        assert!(StatusMatch::parse("9+").is_err());
        assert!(StatusMatch::parse("abc").is_err());
        assert!(StatusMatch::parse("1000").is_err());
        assert!(StatusMatch::Class(5).matches(503));
        assert!(!StatusMatch::Class(5).matches(404));
    }

    #[test]
    fn dns_names() {
        assert!(dns_name_matches("web.lab", "WEB.lab."));
        assert!(dns_name_matches("*.lab", "web.lab"));
        assert!(!dns_name_matches("*.lab", "lab"));
        assert!(!dns_name_matches("web.lab", "x.web.lab"));
    }

    #[test]
    fn path_regex_round_trips_and_rejects_bad_input() {
        let f = L7Filter {
            http_path: vec![PathRegex::parse("^/api/v[0-9]+/").unwrap()],
            http_status: vec![StatusMatch::Class(5)],
            ..Default::default()
        };
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(
            json,
            r#"{"http_status":["5+"],"http_path":["^/api/v[0-9]+/"]}"#
        );
        assert_eq!(serde_json::from_str::<L7Filter>(&json).unwrap(), f);
        assert!(matches!(
            PathRegex::parse("("),
            Err(L7FilterError::BadRegex(..))
        ));
    }
}
