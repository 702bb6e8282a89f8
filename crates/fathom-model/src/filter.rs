//! Selection of records, shared by the live hub, the CLI and (later) the store so that the same
//! flags mean the same thing everywhere. Filters of one kind OR together; kinds AND together,
//! as in `hubble observe`.

use ipnet::IpNet;

/// A CIDR as given on a command line (an IP alone is a /32 or /128).
pub type IpNetArg = IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::str::FromStr;

use crate::flow::{Endpoint, Flow, FlowEvent, L4Protocol};
use crate::record::Record;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("bad CIDR or IP {0:?}: expected e.g. 10.0.0.0/8 or 2001:db8::1")]
    BadCidr(String),
    #[error("bad label {0:?}: expected key=value or key")]
    BadLabel(String),
    #[error("bad protocol {0:?}: expected tcp, udp, icmp, icmpv6 or sctp")]
    BadProtocol(String),
    #[error("bad pod {0:?}: expected [namespace/]pod or namespace/")]
    BadPod(String),
}

/// `ns/pod` matches one pod exactly; `ns/` matches a namespace; `pod` matches pods of that
/// name (or name prefix ending in `*`) in any namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSelector {
    pub namespace: Option<String>,
    pub pod: Option<String>,
}

impl FromStr for PodSelector {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, FilterError> {
        if s.is_empty() || s.matches('/').count() > 1 {
            return Err(FilterError::BadPod(s.into()));
        }
        let sel = match s.split_once('/') {
            Some((ns, pod)) if !ns.is_empty() => PodSelector {
                namespace: Some(ns.into()),
                pod: (!pod.is_empty()).then(|| pod.into()),
            },
            Some(_) => return Err(FilterError::BadPod(s.into())),
            None => PodSelector {
                namespace: None,
                pod: Some(s.into()),
            },
        };
        Ok(sel)
    }
}

impl PodSelector {
    pub fn matches(&self, ep: &Endpoint) -> bool {
        let Some(pod) = ep.pod.as_deref() else {
            return false;
        };
        if let Some(ns) = &self.namespace {
            if ep.namespace.as_deref() != Some(ns.as_str()) {
                return false;
            }
        }
        match self.pod.as_deref() {
            None => true,
            Some(p) => match p.strip_suffix('*') {
                Some(prefix) => pod.starts_with(prefix),
                None => pod == p,
            },
        }
    }
}

impl std::fmt::Display for PodSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.namespace, &self.pod) {
            (Some(ns), Some(p)) => write!(f, "{ns}/{p}"),
            (Some(ns), None) => write!(f, "{ns}/"),
            (None, Some(p)) => write!(f, "{p}"),
            (None, None) => Ok(()),
        }
    }
}

/// `key=value` or `key` (present with any value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSelector {
    pub key: String,
    pub value: Option<String>,
}

impl FromStr for LabelSelector {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, FilterError> {
        let (k, v) = match s.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (s, None),
        };
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(FilterError::BadLabel(s.into()));
        }
        Ok(LabelSelector {
            key: k.into(),
            value: v,
        })
    }
}

impl LabelSelector {
    fn matches(&self, ep: &Endpoint) -> bool {
        match (ep.labels.get(&self.key), &self.value) {
            (Some(_), None) => true,
            (Some(v), Some(want)) => v == want,
            (None, _) => false,
        }
    }
}

pub fn parse_cidr(s: &str) -> Result<IpNet, FilterError> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| FilterError::BadCidr(s.into()))
}

pub fn parse_protocol(s: &str) -> Result<L4Protocol, FilterError> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok(L4Protocol::Tcp),
        "udp" => Ok(L4Protocol::Udp),
        "icmp" | "icmpv4" => Ok(L4Protocol::Icmp),
        "icmpv6" => Ok(L4Protocol::Icmpv6),
        "sctp" => Ok(L4Protocol::Sctp),
        _ => Err(FilterError::BadProtocol(s.into())),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowFilter {
    /// Either side is one of these pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod: Vec<PodSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_pod: Vec<PodSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_pod: Vec<PodSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip: Vec<IpNet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_ip: Vec<IpNet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_ip: Vec<IpNet>,
    /// Either side's port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port: Vec<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocol: Vec<L4Protocol>,
    /// Either side carries all of these labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub label: Vec<LabelSelector>,
    /// Process command name on either side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comm: Vec<String>,
    /// Record types ("flow", "l7").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub r#type: Vec<String>,
    /// Flow record events (start, update, end); other record types pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event: Vec<FlowEvent>,
    /// Kernel drop reasons (drop records only; others pass), e.g. NO_SOCKET.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reason: Vec<String>,
    /// Policy verdicts (policy-verdict records only; others pass).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verdict: Vec<crate::policy::PolicyVerdict>,
    /// L7 protocol, HTTP status/method/path, DNS query: when any is set, only L7 records match.
    #[serde(default, skip_serializing_if = "crate::l7filter::L7Filter::is_empty")]
    pub l7: crate::l7filter::L7Filter,
}

fn any_or_empty<T>(items: &[T], f: impl Fn(&T) -> bool) -> bool {
    items.is_empty() || items.iter().any(f)
}

impl FlowFilter {
    pub fn is_empty(&self) -> bool {
        *self == FlowFilter::default()
    }

    fn endpoints_match(&self, src: &Endpoint, dst: &Endpoint) -> bool {
        any_or_empty(&self.pod, |s| s.matches(src) || s.matches(dst))
            && any_or_empty(&self.from_pod, |s| s.matches(src))
            && any_or_empty(&self.to_pod, |s| s.matches(dst))
            && any_or_empty(&self.ip, |n| n.contains(&src.ip) || n.contains(&dst.ip))
            && any_or_empty(&self.from_ip, |n| n.contains(&src.ip))
            && any_or_empty(&self.to_ip, |n| n.contains(&dst.ip))
            && any_or_empty(&self.port, |p| src.port == *p || dst.port == *p)
            && (self.label.is_empty()
                || self.label.iter().all(|l| l.matches(src))
                || self.label.iter().all(|l| l.matches(dst)))
    }

    pub fn matches_flow(&self, f: &Flow) -> bool {
        self.endpoints_match(&f.source, &f.destination)
            && any_or_empty(&self.event, |e| *e == f.event)
            && any_or_empty(&self.protocol, |p| *p == f.l4.protocol)
            && any_or_empty(&self.comm, |c| {
                [&f.process, &f.destination_process]
                    .iter()
                    .any(|p| p.as_ref().is_some_and(|p| &p.comm == c))
            })
    }

    pub fn matches(&self, r: &Record) -> bool {
        if !any_or_empty(&self.r#type, |t| t == r.type_name()) {
            return false;
        }
        if !self.l7.is_empty() && !matches!(r, Record::L7(l7) if self.l7.matches(l7)) {
            return false;
        }
        match r {
            Record::Flow(f) => self.matches_flow(f),
            Record::Drop(d) => {
                let unknown =
                    Endpoint::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);
                let src = d.source.as_ref().unwrap_or(&unknown);
                let dst = d.destination.as_ref().unwrap_or(&unknown);
                self.endpoints_match(src, dst)
                    && any_or_empty(&self.protocol, |p| d.protocol == Some(*p))
                    && any_or_empty(&self.reason, |r| r.eq_ignore_ascii_case(&d.reason))
                    && self.comm.is_empty()
            }
            Record::PolicyVerdict(v) => {
                self.endpoints_match(&v.source, &v.destination)
                    && any_or_empty(&self.protocol, |p| *p == v.protocol)
                    && any_or_empty(&self.verdict, |w| *w == v.verdict)
                    && self.comm.is_empty()
            }
            Record::Alert(a) => {
                let unknown =
                    Endpoint::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);
                let src = a.source.as_ref().unwrap_or(&unknown);
                let dst = a.destination.as_ref().unwrap_or(&unknown);
                self.endpoints_match(src, dst)
                    && self.protocol.is_empty()
                    && self.comm.is_empty()
                    && any_or_empty(&self.reason, |r| r.eq_ignore_ascii_case(&a.kind))
            }
            Record::L7(l7) => {
                self.endpoints_match(&l7.source, &l7.destination)
                    && (self.protocol.is_empty()
                        || self.protocol.contains(&L4Protocol::Tcp)
                        || self.protocol.contains(&L4Protocol::Udp))
                    && any_or_empty(&self.comm, |c| {
                        l7.process.as_ref().is_some_and(|p| &p.comm == c)
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ep(
        ip: &str,
        port: u16,
        ns: Option<&str>,
        pod: Option<&str>,
        labels: &[(&str, &str)],
    ) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port,
            pod: pod.map(Into::into),
            namespace: ns.map(Into::into),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn pod_selector_forms() {
        let a = ep("10.0.0.1", 1, Some("x"), Some("a"), &[]);
        assert!("x/a".parse::<PodSelector>().unwrap().matches(&a));
        assert!("x/".parse::<PodSelector>().unwrap().matches(&a));
        assert!("a".parse::<PodSelector>().unwrap().matches(&a));
        assert!("a*".parse::<PodSelector>().unwrap().matches(&a));
        assert!(!"y/a".parse::<PodSelector>().unwrap().matches(&a));
        assert!(!"x/b".parse::<PodSelector>().unwrap().matches(&a));
        assert_eq!(
            "/a".parse::<PodSelector>(),
            Err(FilterError::BadPod("/a".into()))
        );
        assert_eq!(
            "a/b/c".parse::<PodSelector>(),
            Err(FilterError::BadPod("a/b/c".into()))
        );
    }

    #[test]
    fn cidr_and_label_parsing() {
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("fd00::1").unwrap().to_string(), "fd00::1/128");
        assert!(matches!(
            parse_cidr("10.0.0.0/33"),
            Err(FilterError::BadCidr(_))
        ));
        assert!(matches!(
            "=v".parse::<LabelSelector>(),
            Err(FilterError::BadLabel(_))
        ));
        assert!(matches!(
            parse_protocol("igmp"),
            Err(FilterError::BadProtocol(_))
        ));
    }

    #[test]
    fn endpoint_filters_and_or_semantics() {
        let src = ep("10.0.0.1", 40000, Some("x"), Some("a"), &[("app", "web")]);
        let dst = ep("10.0.0.2", 80, Some("y"), Some("b"), &[("app", "db")]);
        let f = FlowFilter {
            from_pod: vec!["x/a".parse().unwrap()],
            port: vec![80, 443],
            ..Default::default()
        };
        assert!(f.endpoints_match(&src, &dst));
        let f = FlowFilter {
            from_pod: vec!["y/b".parse().unwrap()],
            ..Default::default()
        };
        assert!(!f.endpoints_match(&src, &dst));
        let f = FlowFilter {
            to_ip: vec![parse_cidr("10.0.0.2/32").unwrap()],
            ..Default::default()
        };
        assert!(f.endpoints_match(&src, &dst));
        let f = FlowFilter {
            label: vec!["app=db".parse().unwrap()],
            ..Default::default()
        };
        assert!(f.endpoints_match(&src, &dst));
        let f = FlowFilter {
            label: vec!["app=web".parse().unwrap(), "app=db".parse().unwrap()],
            ..Default::default()
        };
        assert!(!f.endpoints_match(&src, &dst), "labels AND on one side");
    }
}
