//! Semantic validation: raw documents → `Policy`, applying Kubernetes defaulting and the Fathom
//! extension's rules, recording every problem with its field path.

use std::collections::BTreeSet;
use std::str::FromStr;

use ipnet::IpNet;

use crate::document::{
    child, index, IntOrString, Issue, RawIpBlock, RawPeer, RawPolicy, RawPort, RawRule, RawSelector,
};
use crate::policy::{
    Direction, IcmpFamily, IpBlock, L4Match, Mode, NamespaceScope, Origin, PeerSpec, Policy,
    PolicyKind, PortProtocol, PortSel, Rule, RuleAction,
};
use crate::selector::{Operator, Requirement, Selector};
use crate::syntax;

struct Validator<'a> {
    kind: PolicyKind,
    namespace: String,
    issues: &'a mut Vec<Issue>,
}

impl Validator<'_> {
    fn issue(&mut self, path: &str, reason: impl Into<String>) {
        self.issues.push(Issue {
            path: path.to_string(),
            reason: reason.into(),
        });
    }

    fn labels_map(&mut self, labels: &std::collections::BTreeMap<String, String>, path: &str) {
        for (key, reason) in syntax::check_labels(labels) {
            self.issue(&child(path, &key), reason);
        }
    }

    fn selector(&mut self, raw: &RawSelector, path: &str) -> Selector {
        self.labels_map(&raw.match_labels, &child(path, "matchLabels"));
        let mut reqs = Vec::new();
        let ep = child(path, "matchExpressions");
        for (i, r) in raw.match_expressions.iter().enumerate() {
            let Some(r) = r else { continue };
            let p = index(&ep, i);
            let (Some(key), Some(op)) = (&r.key, &r.operator) else {
                continue;
            };
            if let Err(e) = syntax::check_label_key(key) {
                self.issue(&child(&p, "key"), e);
            }
            let Some(operator) = Operator::parse(op) else {
                self.issue(
                    &child(&p, "operator"),
                    format!(
                        "unsupported operator {op:?} (expected In, NotIn, Exists or DoesNotExist)"
                    ),
                );
                continue;
            };
            let values = r.values.clone().unwrap_or_default();
            match operator {
                Operator::In | Operator::NotIn if values.is_empty() => self.issue(
                    &child(&p, "values"),
                    format!("must be non-empty when operator is {operator}"),
                ),
                Operator::Exists | Operator::DoesNotExist if !values.is_empty() => self.issue(
                    &child(&p, "values"),
                    format!("must be empty when operator is {operator}"),
                ),
                _ => {}
            }
            for (j, v) in values.iter().enumerate() {
                if let Err(e) = syntax::check_label_value(v) {
                    self.issue(&index(&child(&p, "values"), j), e);
                }
            }
            reqs.push(Requirement {
                key: key.clone(),
                operator,
                values: values.into_iter().collect(),
            });
        }
        Selector {
            match_labels: raw.match_labels.clone(),
            match_expressions: reqs,
        }
    }

    fn cidr(&mut self, s: &str, path: &str) -> Option<IpNet> {
        let Ok(net) = IpNet::from_str(s) else {
            self.issue(
                path,
                format!("{s:?} is not a valid CIDR (expected address/prefix-length)"),
            );
            return None;
        };
        if net.trunc() != net {
            self.issue(
                path,
                format!("{s} has host bits set (did you mean {}?)", net.trunc()),
            );
            return None;
        }
        if let IpNet::V6(v6) = net {
            // The kernel keys IPv4 as IPv4-mapped IPv6; a mapped CIDR would silently match IPv4.
            if v6.addr().to_ipv4_mapped().is_some() && v6.prefix_len() >= 96 {
                self.issue(
                    path,
                    format!("{s} is an IPv4-mapped IPv6 range; write it as an IPv4 CIDR"),
                );
                return None;
            }
        }
        Some(net)
    }

    fn ip_block(&mut self, raw: &RawIpBlock, path: &str) -> Option<IpBlock> {
        let cidr = self.cidr(raw.cidr.as_deref()?, &child(path, "cidr"));
        let mut except = Vec::new();
        let xp = child(path, "except");
        for (i, s) in raw.except.iter().enumerate() {
            let p = index(&xp, i);
            let Some(x) = self.cidr(s, &p) else { continue };
            if let Some(c) = cidr {
                let same_family = matches!(
                    (c, x),
                    (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
                );
                if !same_family {
                    self.issue(&p, format!("{x} is not the address family of cidr {c}"));
                    continue;
                }
                if !(c.contains(&x) && x.prefix_len() > c.prefix_len()) {
                    self.issue(&p, format!("{x} is not strictly inside cidr {c}"));
                    continue;
                }
            }
            if except.contains(&x) {
                self.issue(&p, format!("{x} is listed twice"));
                continue;
            }
            except.push(x);
        }
        except.sort();
        Some(IpBlock {
            cidr: cidr?,
            except,
        })
    }

    fn peer(&mut self, raw: &RawPeer, path: &str) -> Option<PeerSpec> {
        let has_selector = raw.pod_selector.is_some() || raw.namespace_selector.is_some();
        match (&raw.ip_block, has_selector) {
            (Some(_), true) => {
                self.issue(
                    path,
                    "ipBlock cannot be combined with podSelector or namespaceSelector in one peer",
                );
                None
            }
            (Some(b), false) => self
                .ip_block(b, &child(path, "ipBlock"))
                .map(PeerSpec::IpBlock),
            (None, true) => {
                let pods = match &raw.pod_selector {
                    Some(s) => self.selector(s, &child(path, "podSelector")),
                    None => Selector::everything(),
                };
                let namespaces = match &raw.namespace_selector {
                    Some(s) => NamespaceScope::Matching(
                        self.selector(s, &child(path, "namespaceSelector")),
                    ),
                    None => NamespaceScope::Own(self.namespace.clone()),
                };
                Some(PeerSpec::Pods { namespaces, pods })
            }
            (None, false) => {
                if !raw.had_errors {
                    self.issue(
                        path,
                        "must specify a peer: podSelector, namespaceSelector or ipBlock",
                    );
                }
                None
            }
        }
    }

    fn port(&mut self, raw: &RawPort, path: &str) -> Option<L4Match> {
        let protocol = match raw.protocol.as_deref() {
            None => PortProtocol::Tcp,
            Some(s) => match PortProtocol::parse(s) {
                Some(p) => p,
                None => {
                    let hint = if let Some(p) = PortProtocol::parse(&s.to_ascii_uppercase()) {
                        format!("; protocols are upper case: {p}")
                    } else if self.kind == PolicyKind::FathomNetworkPolicy
                        && s.eq_ignore_ascii_case("icmp")
                    {
                        "; ICMP is matched with icmps".to_string()
                    } else {
                        String::new()
                    };
                    self.issue(
                        &child(path, "protocol"),
                        format!("unsupported protocol {s:?} (expected TCP, UDP or SCTP){hint}"),
                    );
                    return None;
                }
            },
        };
        let end_path = child(path, "endPort");
        let port = match &raw.port {
            None => {
                if raw.end_port.is_some() {
                    self.issue(&end_path, "endPort requires a numeric port");
                    return None;
                }
                PortSel::Any
            }
            Some(IntOrString::Str(name)) => {
                if let Err(e) = syntax::check_port_name(name) {
                    self.issue(&child(path, "port"), e);
                    return None;
                }
                if raw.end_port.is_some() {
                    self.issue(
                        &end_path,
                        format!("endPort cannot be used with named port {name:?}"),
                    );
                    return None;
                }
                PortSel::Named(name.clone())
            }
            Some(IntOrString::Int(n)) => {
                let Some(first) = port_number(*n) else {
                    self.issue(
                        &child(path, "port"),
                        format!("{n} is out of range (1-65535)"),
                    );
                    return None;
                };
                let last = match raw.end_port {
                    None => first,
                    Some(e) => match port_number(e) {
                        None => {
                            self.issue(&end_path, format!("{e} is out of range (1-65535)"));
                            return None;
                        }
                        Some(e) if e < first => {
                            self.issue(&end_path, format!("{e} is below port {first}"));
                            return None;
                        }
                        Some(e) => e,
                    },
                };
                PortSel::Range { first, last }
            }
        };
        Some(L4Match::Port { protocol, port })
    }

    fn icmp(&mut self, raw: &crate::document::RawIcmp, path: &str) -> Option<L4Match> {
        let family = match raw.family.as_deref() {
            None | Some("IPv4") => IcmpFamily::V4,
            Some("IPv6") => IcmpFamily::V6,
            Some(other) => {
                self.issue(
                    &child(path, "family"),
                    format!("unsupported family {other:?} (expected IPv4 or IPv6)"),
                );
                return None;
            }
        };
        let icmp_type = match raw.icmp_type.map(u8::try_from) {
            Some(Ok(t)) => t,
            Some(Err(_)) => {
                self.issue(
                    &child(path, "type"),
                    format!("{} is out of range (0-255)", raw.icmp_type.unwrap_or(-1)),
                );
                return None;
            }
            None => return None,
        };
        let code = match raw.code.map(u8::try_from) {
            None => None,
            Some(Ok(c)) => Some(c),
            Some(Err(_)) => {
                self.issue(
                    &child(path, "code"),
                    format!("{} is out of range (0-255)", raw.code.unwrap_or(-1)),
                );
                return None;
            }
        };
        Some(L4Match::Icmp {
            family,
            icmp_type,
            code,
        })
    }

    fn rule(&mut self, raw: &RawRule, i: usize, path: &str, peers_key: &str) -> Rule {
        let action = match raw.action.as_deref() {
            None | Some("allow") => RuleAction::Allow,
            Some("deny") => RuleAction::Deny,
            Some(other) => {
                self.issue(
                    &child(path, "action"),
                    format!("unsupported action {other:?} (expected allow or deny)"),
                );
                RuleAction::Allow
            }
        };
        if let Some(d) = &raw.description {
            if let Err(e) = syntax::check_description(d) {
                self.issue(&child(path, "description"), e);
            }
        }
        if let Some(l) = &raw.log_label {
            if let Err(e) = syntax::check_log_label(l) {
                self.issue(&child(path, "logLabel"), e);
            }
        }
        // Kubernetes: an absent or empty from/to list means every peer.
        let peers = match &raw.peers {
            Some(list) if !list.is_empty() => {
                let pp = child(path, peers_key);
                let specs: Vec<PeerSpec> = list
                    .iter()
                    .enumerate()
                    .filter_map(|(j, p)| p.as_ref().and_then(|p| self.peer(p, &index(&pp, j))))
                    .collect();
                Some(specs)
            }
            _ => None,
        };
        let mut traffic = Vec::new();
        if let Some(ports) = &raw.ports {
            let pp = child(path, "ports");
            for (j, p) in ports.iter().enumerate() {
                if let Some(m) = p.as_ref().and_then(|p| self.port(p, &index(&pp, j))) {
                    traffic.push(m);
                }
            }
        }
        if let Some(icmps) = &raw.icmps {
            let pp = child(path, "icmps");
            for (j, c) in icmps.iter().enumerate() {
                if let Some(m) = c.as_ref().and_then(|c| self.icmp(c, &index(&pp, j))) {
                    traffic.push(m);
                }
            }
        }
        let listed = raw.ports.as_ref().is_some_and(|p| !p.is_empty())
            || raw.icmps.as_ref().is_some_and(|c| !c.is_empty());
        Rule {
            index: i,
            action,
            peers,
            traffic: listed.then_some(traffic),
            description: raw.description.clone(),
            log_label: raw.log_label.clone(),
        }
    }
}

fn port_number(n: i64) -> Option<u16> {
    u16::try_from(n).ok().filter(|p| *p >= 1)
}

/// Validate one decoded policy. `base` is the path prefix of the object inside its document
/// (empty, or `items[3]` in a List). Problems are appended to `issues`; the returned policy is
/// meaningful only when none were added.
pub(crate) fn validate(
    raw: &RawPolicy,
    base: &str,
    default_namespace: &str,
    origin: Origin,
    issues: &mut Vec<Issue>,
) -> Option<Policy> {
    let meta_path = child(base, "metadata");
    let namespace = raw
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| default_namespace.to_string());
    let mut v = Validator {
        kind: raw.kind,
        namespace: namespace.clone(),
        issues,
    };
    if let Some(name) = &raw.metadata.name {
        if let Err(e) = syntax::check_dns_subdomain(name) {
            v.issue(&child(&meta_path, "name"), e);
        }
    }
    if let Err(e) = syntax::check_dns_label(&namespace) {
        v.issue(&child(&meta_path, "namespace"), e);
    }
    if let Some(labels) = &raw.metadata.labels {
        v.labels_map(labels, &child(&meta_path, "labels"));
    }
    if let Some(ann) = &raw.metadata.annotations {
        for k in ann.keys() {
            if let Err(e) = syntax::check_label_key(k) {
                v.issue(
                    &child(&child(&meta_path, "annotations"), k),
                    e.replace("label key", "annotation key"),
                );
            }
        }
    }
    let spec = raw.spec.as_ref()?;
    let sp = child(base, "spec");
    let fathom = raw.kind == PolicyKind::FathomNetworkPolicy;

    let pod_selector = spec
        .pod_selector
        .as_ref()
        .map(|s| v.selector(s, &child(&sp, "podSelector")));

    let mode = match spec.mode.as_deref() {
        None | Some("enforce") => Mode::Enforce,
        Some("audit") => Mode::Audit,
        Some(other) => {
            v.issue(
                &child(&sp, "mode"),
                format!("unsupported mode {other:?} (expected enforce or audit)"),
            );
            Mode::Enforce
        }
    };
    if let Some(d) = &spec.description {
        if let Err(e) = syntax::check_description(d) {
            v.issue(&child(&sp, "description"), e);
        }
    }

    let rules_of =
        |list: &Option<Vec<Option<RawRule>>>, key: &str, peers_key: &str, v: &mut Validator| {
            let lp = child(&sp, key);
            list.iter()
                .flatten()
                .enumerate()
                .filter_map(|(i, r)| r.as_ref().map(|r| v.rule(r, i, &index(&lp, i), peers_key)))
                .collect::<Vec<Rule>>()
        };
    let mut ingress = rules_of(&spec.ingress, "ingress", "from", &mut v);
    let mut egress = rules_of(&spec.egress, "egress", "to", &mut v);

    // policyTypes: explicit values, or the defaults.
    let mut explicit: BTreeSet<Direction> = BTreeSet::new();
    if let Some(types) = &spec.policy_types {
        let tp = child(&sp, "policyTypes");
        for (i, t) in types.iter().enumerate() {
            let d = match t.as_str() {
                "Ingress" => Direction::Ingress,
                "Egress" => Direction::Egress,
                other => {
                    v.issue(
                        &index(&tp, i),
                        format!("unsupported value {other:?} (expected Ingress or Egress)"),
                    );
                    continue;
                }
            };
            if !explicit.insert(d) {
                v.issue(&index(&tp, i), format!("{t} is listed twice"));
            }
        }
    }
    let types_given = spec.policy_types.as_ref().is_some_and(|t| !t.is_empty());
    let has_allow = |rules: &[Rule]| rules.iter().any(|r| r.action == RuleAction::Allow);
    let (isolates_ingress, isolates_egress) = if types_given {
        (
            explicit.contains(&Direction::Ingress),
            explicit.contains(&Direction::Egress),
        )
    } else if fathom {
        // Fathom: a policy isolates only where it allows something. A deny-only policy must not
        // turn a pod default-deny; write policyTypes to get deny-all.
        (has_allow(&ingress), has_allow(&egress))
    } else {
        // Kubernetes defaulting: Ingress always; Egress when the egress list is non-empty.
        (true, !egress.is_empty())
    };

    if fathom {
        // Allow rules in a direction the policy does not isolate would be silently inert.
        for (dir, rules, isolated) in [
            (Direction::Ingress, &ingress, isolates_ingress),
            (Direction::Egress, &egress, isolates_egress),
        ] {
            if !isolated {
                if let Some(r) = rules.iter().find(|r| r.action == RuleAction::Allow) {
                    v.issue(
                        &index(&child(&sp, dir.as_str()), r.index),
                        format!(
                            "allow rule has no effect: policyTypes does not include {}",
                            capitalized(dir)
                        ),
                    );
                }
            }
        }
    } else {
        // Kubernetes ignores rules of a direction missing from policyTypes; drop them so the
        // evaluator and the compiler never see rules that cannot apply.
        if !isolates_ingress {
            ingress.clear();
        }
        if !isolates_egress {
            egress.clear();
        }
    }

    Some(Policy {
        kind: raw.kind,
        namespace,
        name: raw.metadata.name.clone()?,
        mode,
        description: spec.description.clone(),
        pod_selector: pod_selector?,
        isolates_ingress,
        isolates_egress,
        ingress,
        egress,
        origin,
    })
}

fn capitalized(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "Ingress",
        Direction::Egress => "Egress",
    }
}
