//! Identities: an endpoint's security-relevant labels → a stable numeric id.
//!
//! Label sources (`source:key=value`), chosen so that no two sources can collide:
//! - `k8s:<key>=<value>`: a pod label;
//! - `k8s-ns:<key>=<value>`: a label of the pod's namespace, including the automatic
//!   `kubernetes.io/metadata.name=<namespace>`, which also pins the namespace itself;
//! - `reserved:host`, `reserved:world`: the reserved identities;
//! - `cidr:<prefix>`: the address is inside a prefix some policy's ipBlock names (CIDR
//!   identities, and pods whose address a policy prefix contains);
//! - `named-port:<name>=<PROTO>/<port>`: the pod's number for a container port name that an
//!   egress rule uses.
//!
//! The last two are derived from the policies. They are what makes identity-based enforcement
//! exact: two pods with equal labels but addresses on different sides of an ipBlock, or with
//! different numbers for a named port an egress rule uses, must not share an identity.
//!
//! Numeric ids: 0 unknown, 1 host, 2 world (reserved, never allocated); 256 … 2^24-1 for pod
//! identities; 2^24 … for CIDR identities (label sets with `reserved:world`). Ids are never
//! reused by an allocator, so a stale kernel entry can never name someone else.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::endpoint::Endpoint;
use crate::error::IdentityError;
use crate::policy::PortProtocol;
use crate::syntax::Labels;

/// A numeric security identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Identity(pub u32);

impl Identity {
    pub const UNKNOWN: Identity = Identity(0);
    pub const HOST: Identity = Identity(1);
    pub const WORLD: Identity = Identity(2);
    /// First id handed to a pod label set.
    pub const FIRST_POD: u32 = 256;
    /// First id handed to a CIDR label set.
    pub const FIRST_CIDR: u32 = 1 << 24;

    pub fn is_reserved(self) -> bool {
        self.0 < Self::FIRST_POD
    }

    pub fn is_cidr(self) -> bool {
        self.0 >= Self::FIRST_CIDR
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LabelSource {
    K8s,
    K8sNamespace,
    Reserved,
    Cidr,
    NamedPort,
}

impl LabelSource {
    fn as_str(self) -> &'static str {
        match self {
            Self::K8s => "k8s",
            Self::K8sNamespace => "k8s-ns",
            Self::Reserved => "reserved",
            Self::Cidr => "cidr",
            Self::NamedPort => "named-port",
        }
    }
}

/// One security-relevant label.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Label {
    pub source: LabelSource,
    pub key: String,
    /// Empty for labels that are a bare key (`reserved:host`, `cidr:10.0.0.0/8`).
    pub value: String,
}

impl Label {
    pub fn new(source: LabelSource, key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            source,
            key: key.into(),
            value: value.into(),
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bare = matches!(self.source, LabelSource::Reserved | LabelSource::Cidr);
        if bare {
            write!(f, "{}:{}", self.source.as_str(), self.key)
        } else {
            write!(f, "{}:{}={}", self.source.as_str(), self.key, self.value)
        }
    }
}

/// A set of labels; ordering of construction does not matter.
pub type LabelSet = BTreeSet<Label>;

pub fn reserved_labels(name: &str) -> LabelSet {
    LabelSet::from([Label::new(LabelSource::Reserved, name, "")])
}

pub fn cidr_label(net: IpNet) -> Label {
    Label::new(LabelSource::Cidr, net.to_string(), "")
}

/// The plain security-relevant labels of a pod: its labels and its namespace's labels.
pub fn endpoint_labels(ep: &Endpoint, namespace_labels: &Labels) -> LabelSet {
    let pod = ep
        .labels
        .iter()
        .map(|(k, v)| Label::new(LabelSource::K8s, k, v));
    let ns = namespace_labels
        .iter()
        .map(|(k, v)| Label::new(LabelSource::K8sNamespace, k, v));
    pod.chain(ns).collect()
}

/// What the policies make security-relevant beyond labels (see the module comment).
#[derive(Debug, Clone, Default)]
pub struct Derived {
    /// Every ipBlock `cidr` and `except` prefix of the policy set.
    pub prefixes: BTreeSet<IpNet>,
    /// Named ports used by egress rules, with their protocol.
    pub egress_port_names: BTreeSet<(String, PortProtocol)>,
}

impl Derived {
    /// A pod's full identity label set.
    pub fn endpoint_labels(&self, ep: &Endpoint, namespace_labels: &Labels) -> LabelSet {
        let mut set = endpoint_labels(ep, namespace_labels);
        for p in &self.prefixes {
            if ep.ips.iter().any(|ip| p.contains(ip)) {
                set.insert(cidr_label(*p));
            }
        }
        for (name, proto) in &self.egress_port_names {
            if let Some(port) = ep.named_port(name, *proto) {
                set.insert(Label::new(
                    LabelSource::NamedPort,
                    name,
                    format!("{proto}/{port}"),
                ));
            }
        }
        set
    }

    /// The label set of the ipcache entry for policy prefix `net`: world, plus every policy
    /// prefix containing it. With longest-prefix lookup, an address then carries exactly the
    /// policy prefixes that contain it.
    pub fn cidr_labels(&self, net: IpNet) -> LabelSet {
        let mut set = reserved_labels("world");
        for p in &self.prefixes {
            if p.contains(&net) {
                set.insert(cidr_label(*p));
            }
        }
        set
    }
}

/// Hands out ids: the same label set always gets the same id from one allocator.
#[derive(Debug, Clone)]
pub struct IdentityAllocator {
    by_labels: HashMap<LabelSet, Identity>,
    by_id: BTreeMap<Identity, LabelSet>,
    next_pod: u32,
    next_cidr: u32,
}

impl Default for IdentityAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl IdentityAllocator {
    pub fn new() -> Self {
        let mut a = Self {
            by_labels: HashMap::new(),
            by_id: BTreeMap::new(),
            next_pod: Identity::FIRST_POD,
            next_cidr: Identity::FIRST_CIDR,
        };
        for (id, name) in [(Identity::HOST, "host"), (Identity::WORLD, "world")] {
            a.by_labels.insert(reserved_labels(name), id);
            a.by_id.insert(id, reserved_labels(name));
        }
        a
    }

    /// The id of `labels`, allocating one if the set is new.
    pub fn allocate(&mut self, labels: &LabelSet) -> Result<Identity, IdentityError> {
        if let Some(id) = self.by_labels.get(labels) {
            return Ok(*id);
        }
        let cidr = labels.contains(&Label::new(LabelSource::Reserved, "world", ""));
        let id = if cidr {
            let id = self.next_cidr;
            self.next_cidr = id.checked_add(1).ok_or(IdentityError::Exhausted {
                scope: "CIDR",
                limit: u32::MAX,
            })?;
            id
        } else {
            let id = self.next_pod;
            if id >= Identity::FIRST_CIDR {
                return Err(IdentityError::Exhausted {
                    scope: "pod",
                    limit: Identity::FIRST_CIDR - Identity::FIRST_POD,
                });
            }
            self.next_pod = id + 1;
            id
        };
        let id = Identity(id);
        self.by_labels.insert(labels.clone(), id);
        self.by_id.insert(id, labels.clone());
        Ok(id)
    }

    pub fn lookup(&self, labels: &LabelSet) -> Option<Identity> {
        self.by_labels.get(labels).copied()
    }

    pub fn labels(&self, id: Identity) -> Option<&LabelSet> {
        self.by_id.get(&id)
    }

    /// Forget label sets whose ids are not in `in_use` (reserved ones are kept). Forgotten ids
    /// are not handed out again.
    pub fn retain(&mut self, in_use: &BTreeSet<Identity>) {
        self.by_id
            .retain(|id, _| id.is_reserved() || in_use.contains(id));
        self.by_labels
            .retain(|_, id| id.is_reserved() || in_use.contains(id));
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Everything needed to hand out the same ids after a restart (the agent keeps it next to
    /// the applied policies).
    pub fn snapshot(&self) -> AllocatorSnapshot {
        AllocatorSnapshot {
            next_pod: self.next_pod,
            next_cidr: self.next_cidr,
            identities: self
                .by_id
                .iter()
                .filter(|(id, _)| !id.is_reserved())
                .map(|(id, labels)| (*id, labels.clone()))
                .collect(),
        }
    }

    /// An allocator that continues `snap`: the same label sets keep their ids, and new ones
    /// get ids never handed out before. Refuses a snapshot that could not have come from an
    /// allocator (an id outside its range, a label set twice, counters behind the ids).
    pub fn restore(snap: &AllocatorSnapshot) -> Result<Self, String> {
        let mut a = Self::new();
        if !(Identity::FIRST_POD..=Identity::FIRST_CIDR).contains(&snap.next_pod)
            || snap.next_cidr < Identity::FIRST_CIDR
        {
            return Err(format!(
                "identity counters out of range (next pod id {}, next CIDR id {})",
                snap.next_pod, snap.next_cidr
            ));
        }
        for (id, labels) in &snap.identities {
            let next = if id.is_cidr() {
                snap.next_cidr
            } else {
                snap.next_pod
            };
            if id.is_reserved() || id.0 >= next {
                return Err(format!("identity {id} is outside the allocated range"));
            }
            if a.by_labels.insert(labels.clone(), *id).is_some() {
                return Err(format!("identity {id}: its label set has another id too"));
            }
            a.by_id.insert(*id, labels.clone());
        }
        a.next_pod = snap.next_pod;
        a.next_cidr = snap.next_cidr;
        Ok(a)
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// An allocator's state, as `IdentityAllocator::snapshot` gives it (serde).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocatorSnapshot {
    pub next_pod: u32,
    pub next_cidr: u32,
    /// Non-reserved ids and their label sets.
    pub identities: BTreeMap<Identity, LabelSet>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(labels: &[(&str, &str)]) -> LabelSet {
        labels
            .iter()
            .map(|(k, v)| Label::new(LabelSource::K8s, *k, *v))
            .collect()
    }

    #[test]
    fn same_labels_same_id_in_any_order() {
        let mut a = IdentityAllocator::new();
        let x = a
            .allocate(&set(&[("app", "web"), ("tier", "fe")]))
            .expect("id");
        let y = a
            .allocate(&set(&[("tier", "fe"), ("app", "web")]))
            .expect("id");
        let z = a.allocate(&set(&[("app", "db")])).expect("id");
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert!(x.0 >= Identity::FIRST_POD && !x.is_cidr());
    }

    #[test]
    fn reserved_and_cidr_ranges() {
        let mut a = IdentityAllocator::new();
        assert_eq!(
            a.allocate(&reserved_labels("host")).expect("id"),
            Identity::HOST
        );
        assert_eq!(
            a.allocate(&reserved_labels("world")).expect("id"),
            Identity::WORLD
        );
        let mut c = reserved_labels("world");
        c.insert(cidr_label("10.0.0.0/8".parse().expect("net")));
        let id = a.allocate(&c).expect("id");
        assert!(id.is_cidr());
    }

    #[test]
    fn ids_are_not_reused_after_retain() {
        let mut a = IdentityAllocator::new();
        let x = a.allocate(&set(&[("a", "1")])).expect("id");
        a.retain(&BTreeSet::new());
        assert_eq!(a.lookup(&set(&[("a", "1")])), None);
        let y = a.allocate(&set(&[("a", "1")])).expect("id");
        assert_ne!(x, y);
    }

    #[test]
    fn a_restored_allocator_keeps_ids_and_never_reuses_one() {
        let mut a = IdentityAllocator::new();
        let x = a.allocate(&set(&[("a", "1")])).expect("id");
        let gone = a.allocate(&set(&[("a", "2")])).expect("id");
        a.retain(&BTreeSet::from([x]));
        let mut c = reserved_labels("world");
        c.insert(cidr_label("10.0.0.0/8".parse().expect("net")));
        let cidr = a.allocate(&c).expect("id");
        let json = serde_json::to_string(&a.snapshot()).expect("json");
        let snap: AllocatorSnapshot = serde_json::from_str(&json).expect("parse");
        let mut b = IdentityAllocator::restore(&snap).expect("restore");
        assert_eq!(b.allocate(&set(&[("a", "1")])).expect("id"), x);
        assert_eq!(b.allocate(&c).expect("id"), cidr);
        assert_eq!(b.lookup(&reserved_labels("host")), Some(Identity::HOST));
        // The forgotten id stays retired: a new set gets the next one.
        let y = b.allocate(&set(&[("a", "3")])).expect("id");
        assert_eq!(y, Identity(gone.0 + 1));
        assert_eq!(
            b.allocate(&set(&[("a", "2")])).expect("id"),
            Identity(y.0 + 1)
        );
    }

    #[test]
    fn impossible_snapshots_are_refused() {
        let mut a = IdentityAllocator::new();
        let x = a.allocate(&set(&[("a", "1")])).expect("id");
        let good = a.snapshot();
        let mut behind = good.clone();
        behind.next_pod = x.0;
        let mut twice = good.clone();
        twice
            .identities
            .insert(Identity(x.0 + 1), set(&[("a", "1")]));
        twice.next_pod = x.0 + 2;
        let mut reserved = good.clone();
        reserved.identities.insert(Identity(7), set(&[("b", "1")]));
        for (snap, want) in [
            (
                behind,
                format!("identity {x} is outside the allocated range"),
            ),
            (
                twice,
                format!("identity {}: its label set has another id too", x.0 + 1),
            ),
            (
                reserved,
                "identity 7 is outside the allocated range".to_string(),
            ),
        ] {
            assert_eq!(IdentityAllocator::restore(&snap).err(), Some(want));
        }
    }

    #[test]
    fn label_text() {
        assert_eq!(
            Label::new(LabelSource::K8s, "app", "web").to_string(),
            "k8s:app=web"
        );
        assert_eq!(
            cidr_label("10.0.0.0/8".parse().expect("net")).to_string(),
            "cidr:10.0.0.0/8"
        );
        assert_eq!(
            reserved_labels("host")
                .iter()
                .next()
                .map(ToString::to_string)
                .as_deref(),
            Some("reserved:host")
        );
    }
}
