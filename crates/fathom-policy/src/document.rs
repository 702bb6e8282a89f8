//! Document shapes: a YAML tree (parsed by `serde_norway`) decoded into raw, typed structs.
//!
//! Why not `#[derive(Deserialize)]` with `deny_unknown_fields`: serde stops at the first
//! problem of a document and loses the field path below flattened structs, while an apply must
//! report *every* problem with its exact path. So the YAML is parsed by serde into a
//! `serde_norway::Value` and this module walks that tree, recording each unknown field, wrong
//! type and missing required field, and keeping list positions stable (a bad element becomes
//! `None`) so that later paths stay correct. Semantic checks live in `validate.rs`.

use std::collections::BTreeMap;
use std::fmt;

use serde_norway::{Mapping, Value};

use crate::policy::PolicyKind;

/// A problem found while decoding or validating, relative to one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issue {
    pub path: String,
    pub reason: String,
}

/// `parent.key`, or `parent["key"]` when the key is not a plain identifier (label keys).
pub(crate) fn child(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    // Built by hand: paths are made for every field of every document (an apply of 10k rules
    // makes ~100k), and `format!` was a visible part of the load time.
    match (parent.is_empty(), plain) {
        (true, true) => key.to_string(),
        (true, false) => format!("[{key:?}]"),
        (false, true) => {
            let mut s = String::with_capacity(parent.len() + 1 + key.len());
            s.push_str(parent);
            s.push('.');
            s.push_str(key);
            s
        }
        (false, false) => format!("{parent}[{key:?}]"),
    }
}

pub(crate) fn index(parent: &str, i: usize) -> String {
    let mut s = String::with_capacity(parent.len() + 8);
    s.push_str(parent);
    s.push('[');
    let _ = fmt::Write::write_fmt(&mut s, format_args!("{i}"));
    s.push(']');
    s
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Kubernetes `IntOrString` (ports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IntOrString {
    Int(i64),
    Str(String),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RawMetadata {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RawSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<Option<RawRequirement>>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RawRequirement {
    pub key: Option<String>,
    pub operator: Option<String>,
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RawIpBlock {
    pub cidr: Option<String>,
    pub except: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RawPeer {
    pub pod_selector: Option<RawSelector>,
    pub namespace_selector: Option<RawSelector>,
    pub ip_block: Option<RawIpBlock>,
    /// Set when a field was present but failed to decode, so validation does not add a
    /// misleading "must specify a peer".
    pub had_errors: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RawPort {
    pub protocol: Option<String>,
    pub port: Option<IntOrString>,
    pub end_port: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RawIcmp {
    pub family: Option<String>,
    pub icmp_type: Option<i64>,
    pub code: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RawRule {
    pub action: Option<String>,
    pub description: Option<String>,
    pub log_label: Option<String>,
    pub peers: Option<Vec<Option<RawPeer>>>,
    pub ports: Option<Vec<Option<RawPort>>>,
    pub icmps: Option<Vec<Option<RawIcmp>>>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RawSpec {
    pub pod_selector: Option<RawSelector>,
    pub policy_types: Option<Vec<String>>,
    pub ingress: Option<Vec<Option<RawRule>>>,
    pub egress: Option<Vec<Option<RawRule>>>,
    pub mode: Option<String>,
    pub description: Option<String>,
}

/// A policy document as written, before semantic validation.
#[derive(Debug, Clone)]
pub(crate) struct RawPolicy {
    pub kind: PolicyKind,
    pub metadata: RawMetadata,
    pub spec: Option<RawSpec>,
}

/// Fields that only the Fathom kind accepts; named in the message when a NetworkPolicy has one.
const FATHOM_ONLY: &[&str] = &["action", "description", "logLabel", "icmps", "mode"];

/// Metadata fields a server adds; accepted and ignored so `kubectl get -o yaml` output loads.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "finalizers",
    "ownerReferences",
];

/// A mapping whose keys have been checked against the allowed set.
struct Obj<'v> {
    path: String,
    map: &'v Mapping,
}

impl<'v> Obj<'v> {
    /// The value of `key`; `None` when absent or null (Kubernetes treats null as absent).
    fn get(&self, key: &str) -> Option<&'v Value> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    fn path(&self, key: &str) -> String {
        child(&self.path, key)
    }
}

/// Walks one document, collecting issues.
pub(crate) struct Decoder {
    pub kind: PolicyKind,
    pub issues: Vec<Issue>,
}

impl Decoder {
    pub fn new(kind: PolicyKind) -> Self {
        Self {
            kind,
            issues: Vec::new(),
        }
    }

    fn issue(&mut self, path: &str, reason: impl Into<String>) {
        self.issues.push(Issue {
            path: path.to_string(),
            reason: reason.into(),
        });
    }

    fn expected(&mut self, path: &str, what: &str, v: &Value) {
        self.issue(path, format!("expected {what}, found {}", type_name(v)));
    }

    fn object<'v>(&mut self, v: &'v Value, path: &str, allowed: &[&str]) -> Option<Obj<'v>> {
        let Value::Mapping(map) = v else {
            self.expected(path, "a mapping", v);
            return None;
        };
        for key in map.keys() {
            let Value::String(k) = key else {
                self.issue(
                    path,
                    format!("field names must be strings, found {}", type_name(key)),
                );
                continue;
            };
            if allowed.contains(&k.as_str()) {
                continue;
            }
            let mut reason = format!("unknown field (expected one of: {})", allowed.join(", "));
            if self.kind == PolicyKind::NetworkPolicy && FATHOM_ONLY.contains(&k.as_str()) {
                reason.push_str(&format!("; {k:?} is a FathomNetworkPolicy field"));
            }
            self.issue(&child(path, k), reason);
        }
        Some(Obj {
            path: path.to_string(),
            map,
        })
    }

    fn required<'v>(&mut self, o: &Obj<'v>, key: &str) -> Option<&'v Value> {
        let v = o.get(key);
        if v.is_none() {
            self.issue(&o.path(key), "required field is missing");
        }
        v
    }

    fn string(&mut self, v: &Value, path: &str) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            other => {
                self.expected(path, "a string", other);
                None
            }
        }
    }

    fn int(&mut self, v: &Value, path: &str) -> Option<i64> {
        match v {
            Value::Number(n) => match n.as_i64() {
                Some(i) => Some(i),
                None => {
                    self.issue(path, format!("expected an integer, found {n}"));
                    None
                }
            },
            other => {
                self.expected(path, "an integer", other);
                None
            }
        }
    }

    fn seq<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v [Value]> {
        match v {
            Value::Sequence(s) => Some(s.as_slice()),
            other => {
                self.expected(path, "a list", other);
                None
            }
        }
    }

    fn string_list(&mut self, v: &Value, path: &str) -> Option<Vec<String>> {
        let items = self.seq(v, path)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(item, &index(path, i)) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `map[string]string` (labels, annotations, matchLabels). Values must be strings: YAML
    /// `version: 1` is a number and the API server rejects it, so this does too.
    fn string_map(&mut self, v: &Value, path: &str) -> Option<BTreeMap<String, String>> {
        let Value::Mapping(map) = v else {
            self.expected(path, "a mapping", v);
            return None;
        };
        let mut out = BTreeMap::new();
        for (k, val) in map {
            let Value::String(k) = k else {
                self.issue(
                    path,
                    format!("keys must be strings, found {}", type_name(k)),
                );
                continue;
            };
            if let Some(s) = self.string(val, &child(path, k)) {
                out.insert(k.clone(), s);
            }
        }
        Some(out)
    }

    /// Decode a policy document (the top-level `kind`/`apiVersion` were already checked).
    pub fn policy(&mut self, v: &Value, path: &str) -> RawPolicy {
        let kind = self.kind;
        let top = self.object(v, path, &["apiVersion", "kind", "metadata", "spec"]);
        let mut metadata = RawMetadata::default();
        let mut spec = None;
        if let Some(top) = top {
            if let Some(m) = self.required(&top, "metadata") {
                metadata = self.metadata(m, &top.path("metadata"));
            }
            if let Some(s) = self.required(&top, "spec") {
                spec = self.spec(s, &top.path("spec"));
            }
        }
        RawPolicy {
            kind,
            metadata,
            spec,
        }
    }

    fn metadata(&mut self, v: &Value, path: &str) -> RawMetadata {
        let mut allowed = vec!["name", "namespace", "labels", "annotations"];
        allowed.extend_from_slice(SERVER_METADATA);
        let mut out = RawMetadata::default();
        let Some(o) = self.object(v, path, &allowed) else {
            return out;
        };
        if let Some(n) = self.required(&o, "name") {
            out.name = self.string(n, &o.path("name"));
        }
        if let Some(n) = o.get("namespace") {
            out.namespace = self.string(n, &o.path("namespace"));
        }
        if let Some(l) = o.get("labels") {
            out.labels = self.string_map(l, &o.path("labels"));
        }
        if let Some(a) = o.get("annotations") {
            out.annotations = self.string_map(a, &o.path("annotations"));
        }
        out
    }

    fn spec(&mut self, v: &Value, path: &str) -> Option<RawSpec> {
        let fathom = self.kind == PolicyKind::FathomNetworkPolicy;
        let mut allowed = vec!["podSelector", "policyTypes", "ingress", "egress"];
        if fathom {
            allowed.extend_from_slice(&["mode", "description"]);
        }
        let o = self.object(v, path, &allowed)?;
        let mut spec = RawSpec::default();
        // podSelector is "NOT optional" in the API: a missing one would select every pod.
        match o.map.get("podSelector") {
            None => self.issue(
                &o.path("podSelector"),
                "required field is missing (use {} to select every pod)",
            ),
            Some(Value::Null) => self.issue(
                &o.path("podSelector"),
                "must not be null (use {} to select every pod)",
            ),
            Some(s) => spec.pod_selector = self.selector(s, &o.path("podSelector")),
        }
        if let Some(t) = o.get("policyTypes") {
            spec.policy_types = self.string_list(t, &o.path("policyTypes"));
        }
        if let Some(r) = o.get("ingress") {
            spec.ingress = self.rules(r, &o.path("ingress"), "from");
        }
        if let Some(r) = o.get("egress") {
            spec.egress = self.rules(r, &o.path("egress"), "to");
        }
        if let Some(m) = o.get("mode") {
            spec.mode = self.string(m, &o.path("mode"));
        }
        if let Some(d) = o.get("description") {
            spec.description = self.string(d, &o.path("description"));
        }
        Some(spec)
    }

    fn selector(&mut self, v: &Value, path: &str) -> Option<RawSelector> {
        let o = self.object(v, path, &["matchLabels", "matchExpressions"])?;
        let mut out = RawSelector::default();
        if let Some(m) = o.get("matchLabels") {
            out.match_labels = self
                .string_map(m, &o.path("matchLabels"))
                .unwrap_or_default();
        }
        if let Some(e) = o.get("matchExpressions") {
            let p = o.path("matchExpressions");
            if let Some(items) = self.seq(e, &p) {
                out.match_expressions = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.requirement(item, &index(&p, i)))
                    .collect();
            }
        }
        Some(out)
    }

    fn requirement(&mut self, v: &Value, path: &str) -> Option<RawRequirement> {
        let o = self.object(v, path, &["key", "operator", "values"])?;
        let mut out = RawRequirement::default();
        if let Some(k) = self.required(&o, "key") {
            out.key = self.string(k, &o.path("key"));
        }
        if let Some(op) = self.required(&o, "operator") {
            out.operator = self.string(op, &o.path("operator"));
        }
        if let Some(vals) = o.get("values") {
            out.values = self.string_list(vals, &o.path("values"));
        }
        Some(out)
    }

    fn rules(&mut self, v: &Value, path: &str, peers_key: &str) -> Option<Vec<Option<RawRule>>> {
        let items = self.seq(v, path)?;
        Some(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| self.rule(item, &index(path, i), peers_key))
                .collect(),
        )
    }

    fn rule(&mut self, v: &Value, path: &str, peers_key: &str) -> Option<RawRule> {
        let fathom = self.kind == PolicyKind::FathomNetworkPolicy;
        let mut allowed = vec![peers_key, "ports"];
        if fathom {
            allowed.extend_from_slice(&["action", "description", "logLabel", "icmps"]);
        }
        let o = self.object(v, path, &allowed)?;
        let mut out = RawRule::default();
        if let Some(p) = o.get(peers_key) {
            let pp = o.path(peers_key);
            if let Some(items) = self.seq(p, &pp) {
                out.peers = Some(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.peer(item, &index(&pp, i)))
                        .collect(),
                );
            }
        }
        if let Some(p) = o.get("ports") {
            let pp = o.path("ports");
            if let Some(items) = self.seq(p, &pp) {
                out.ports = Some(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.port(item, &index(&pp, i)))
                        .collect(),
                );
            }
        }
        if let Some(p) = o.get("icmps") {
            let pp = o.path("icmps");
            if let Some(items) = self.seq(p, &pp) {
                out.icmps = Some(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.icmp(item, &index(&pp, i)))
                        .collect(),
                );
            }
        }
        if let Some(a) = o.get("action") {
            out.action = self.string(a, &o.path("action"));
        }
        if let Some(d) = o.get("description") {
            out.description = self.string(d, &o.path("description"));
        }
        if let Some(l) = o.get("logLabel") {
            out.log_label = self.string(l, &o.path("logLabel"));
        }
        Some(out)
    }

    fn peer(&mut self, v: &Value, path: &str) -> Option<RawPeer> {
        let before = self.issues.len();
        let o = self.object(v, path, &["podSelector", "namespaceSelector", "ipBlock"])?;
        let mut out = RawPeer::default();
        if let Some(s) = o.get("podSelector") {
            out.pod_selector = self.selector(s, &o.path("podSelector"));
        }
        if let Some(s) = o.get("namespaceSelector") {
            out.namespace_selector = self.selector(s, &o.path("namespaceSelector"));
        }
        if let Some(b) = o.get("ipBlock") {
            out.ip_block = self.ip_block(b, &o.path("ipBlock"));
        }
        out.had_errors = self.issues.len() > before;
        Some(out)
    }

    fn ip_block(&mut self, v: &Value, path: &str) -> Option<RawIpBlock> {
        let o = self.object(v, path, &["cidr", "except"])?;
        let mut out = RawIpBlock::default();
        if let Some(c) = self.required(&o, "cidr") {
            out.cidr = self.string(c, &o.path("cidr"));
        }
        if let Some(e) = o.get("except") {
            out.except = self.string_list(e, &o.path("except")).unwrap_or_default();
        }
        Some(out)
    }

    fn port(&mut self, v: &Value, path: &str) -> Option<RawPort> {
        let o = self.object(v, path, &["protocol", "port", "endPort"])?;
        let mut out = RawPort::default();
        if let Some(p) = o.get("protocol") {
            out.protocol = self.string(p, &o.path("protocol"));
        }
        if let Some(p) = o.get("port") {
            out.port = match p {
                Value::String(s) => Some(IntOrString::Str(s.clone())),
                other => self.int(other, &o.path("port")).map(IntOrString::Int),
            };
        }
        if let Some(e) = o.get("endPort") {
            out.end_port = self.int(e, &o.path("endPort"));
        }
        Some(out)
    }

    fn icmp(&mut self, v: &Value, path: &str) -> Option<RawIcmp> {
        let o = self.object(v, path, &["family", "type", "code"])?;
        let mut out = RawIcmp::default();
        if let Some(f) = o.get("family") {
            out.family = self.string(f, &o.path("family"));
        }
        if let Some(t) = self.required(&o, "type") {
            out.icmp_type = self.int(t, &o.path("type"));
        }
        if let Some(c) = o.get("code") {
            out.code = self.int(c, &o.path("code"));
        }
        Some(out)
    }
}

/// Read `kind` and `apiVersion` of a top-level or list item mapping without judging the rest.
pub(crate) fn kind_and_version(v: &Value) -> (Option<&str>, Option<&str>) {
    let Value::Mapping(m) = v else {
        return (None, None);
    };
    let s = |k: &str| m.get(k).and_then(Value::as_str);
    (s("kind"), s("apiVersion"))
}

/// `metadata.namespace` / `metadata.name` for naming an object in messages, if readable.
pub(crate) fn peek_name(v: &Value) -> (Option<&str>, Option<&str>) {
    let meta = match v {
        Value::Mapping(m) => m.get("metadata"),
        _ => None,
    };
    match meta {
        Some(Value::Mapping(m)) => (
            m.get("namespace").and_then(Value::as_str),
            m.get("name").and_then(Value::as_str),
        ),
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(child("", "spec"), "spec");
        assert_eq!(child("spec", "podSelector"), "spec.podSelector");
        assert_eq!(
            child("m", "app.kubernetes.io/name"),
            "m[\"app.kubernetes.io/name\"]"
        );
        assert_eq!(index("spec.ingress", 2), "spec.ingress[2]");
    }

    #[test]
    fn collects_every_unknown_field() {
        let v: Value = serde_norway::from_str(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, nmespace: x}\nspec:\n  podSelector: {}\n  ingres: []\n  ingress: [{form: []}]\n",
        )
        .expect("yaml");
        let mut d = Decoder::new(PolicyKind::NetworkPolicy);
        let _ = d.policy(&v, "");
        let paths: Vec<&str> = d.issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            ["metadata.nmespace", "spec.ingres", "spec.ingress[0].form"]
        );
    }
}
