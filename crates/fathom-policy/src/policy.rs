//! The validated policy model: what a `PolicySet` holds after documents passed validation.
//!
//! Kubernetes defaulting has been applied (policyTypes, TCP as the default protocol) and rules
//! that cannot have an effect (ingress rules of a NetworkPolicy whose policyTypes omit
//! Ingress) have been dropped, so the evaluator and the compiler read one unambiguous shape.

use std::fmt;

use ipnet::IpNet;
use serde::Serialize;

use crate::selector::Selector;

/// Traffic direction relative to the endpoint a rule protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which document kind a policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum PolicyKind {
    NetworkPolicy,
    FathomNetworkPolicy,
}

impl PolicyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NetworkPolicy => "NetworkPolicy",
            Self::FathomNetworkPolicy => "FathomNetworkPolicy",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `enforce` drops what the policy denies; `audit` only reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Mode {
    #[default]
    Enforce,
    Audit,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Enforce => "enforce",
            Self::Audit => "audit",
        })
    }
}

/// What a matching rule does. Kubernetes rules are always `Allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum RuleAction {
    Allow,
    Deny,
}

impl fmt::Display for RuleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        })
    }
}

/// The port-bearing protocols a `ports` entry may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum PortProtocol {
    Tcp,
    Udp,
    Sctp,
}

impl PortProtocol {
    /// Kubernetes spelling; case-sensitive like the API server.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "TCP" => Some(Self::Tcp),
            "UDP" => Some(Self::Udp),
            "SCTP" => Some(Self::Sctp),
            _ => None,
        }
    }

    /// IANA protocol number, as found in the IP header.
    pub fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
            Self::Sctp => 132,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for PortProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ICMP for IPv4 (protocol 1) or ICMPv6 (protocol 58).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum IcmpFamily {
    V4,
    V6,
}

impl IcmpFamily {
    pub fn number(self) -> u8 {
        match self {
            Self::V4 => 1,
            Self::V6 => 58,
        }
    }
}

/// Which ports of a protocol a `ports` entry covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum PortSel {
    /// `port` absent: every port of the protocol.
    Any,
    /// `port` (and `endPort`): an inclusive range; a single port has `first == last`.
    Range { first: u16, last: u16 },
    /// A named container port, resolved on the destination pod.
    Named(String),
}

/// One traffic selector of a rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum L4Match {
    Port {
        protocol: PortProtocol,
        port: PortSel,
    },
    Icmp {
        family: IcmpFamily,
        icmp_type: u8,
        code: Option<u8>,
    },
}

/// A `from`/`to` entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum PeerSpec {
    /// Pods chosen by labels, in the policy's namespace or in namespaces chosen by labels.
    /// A Kubernetes peer with both selectors is their AND; separate peers are OR-ed.
    Pods {
        namespaces: NamespaceScope,
        pods: Selector,
    },
    IpBlock(IpBlock),
}

/// Which namespaces a pod peer may live in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum NamespaceScope {
    /// `podSelector` without `namespaceSelector`: the policy's own namespace.
    Own(String),
    /// `namespaceSelector` (possibly `{}` = every namespace).
    Matching(Selector),
}

/// An `ipBlock`: `cidr` minus every `except` (each strictly inside `cidr`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct IpBlock {
    pub cidr: IpNet,
    pub except: Vec<IpNet>,
}

/// One ingress or egress rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Position in the document's `ingress`/`egress` list, reported in verdicts.
    pub index: usize,
    pub action: RuleAction,
    /// `None`: any peer (`from`/`to` absent or empty).
    pub peers: Option<Vec<PeerSpec>>,
    /// `None`: any traffic (`ports` and `icmps` absent or empty).
    pub traffic: Option<Vec<L4Match>>,
    pub description: Option<String>,
    pub log_label: Option<String>,
}

/// Where a policy was defined, for messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub file: String,
    /// 1-based document number in the file.
    pub document: usize,
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub kind: PolicyKind,
    pub namespace: String,
    pub name: String,
    pub mode: Mode,
    pub description: Option<String>,
    pub pod_selector: Selector,
    /// The directions in which selected pods become default-deny (policyTypes after defaulting).
    pub isolates_ingress: bool,
    pub isolates_egress: bool,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    pub origin: Origin,
}

impl Policy {
    pub fn isolates(&self, direction: Direction) -> bool {
        match direction {
            Direction::Ingress => self.isolates_ingress,
            Direction::Egress => self.isolates_egress,
        }
    }

    pub fn rules(&self, direction: Direction) -> &[Rule] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }

    /// Does this policy apply to a pod in `namespace` with `labels`?
    pub fn selects(&self, namespace: &str, labels: &crate::syntax::Labels) -> bool {
        self.namespace == namespace && self.pod_selector.matches(labels)
    }

    /// `Kind namespace/name`, as used in messages.
    pub fn display_name(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// A complete, validated set of policies, ordered by (namespace, name, kind).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicySet {
    policies: Vec<Policy>,
}

impl PolicySet {
    /// Build from policies already validated; sorts them into the canonical order.
    pub(crate) fn from_validated(mut policies: Vec<Policy>) -> Self {
        policies
            .sort_by(|a, b| (&a.namespace, &a.name, a.kind).cmp(&(&b.namespace, &b.name, b.kind)));
        Self { policies }
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    pub fn get(&self, kind: PolicyKind, namespace: &str, name: &str) -> Option<&Policy> {
        self.policies
            .iter()
            .find(|p| p.kind == kind && p.namespace == namespace && p.name == name)
    }
}
