//! The compiler: policies + endpoints → identities, the ipcache, and per-endpoint policy map
//! entries whose single longest hit is the final verdict.
//!
//! For one endpoint and direction, every rule that can apply contributes (peer, L4 prefix)
//! pairs, where the peer is an identity or the wildcard. The entries of a peer's trie are all
//! prefixes contributed for that peer *and for the wildcard*; an entry's verdict is
//! [`decide`] over every rule whose prefix contains the entry's prefix. Because the prefixes
//! containing a packet form a chain, the longest one present is contained in exactly the rule
//! prefixes that contain the packet, so its verdict is the packet's verdict. The wildcard trie
//! gets a root entry when a policy isolates the endpoint (the default verdict); a peer without
//! a trie of its own falls back to the wildcard trie, which is correct because nothing was
//! contributed for it specifically.
//!
//! The kernel stores the tries in a hash map and probes four L4 lengths only
//! ([`L4Prefix::LEVELS`]), so rule prefixes are first expanded to those lengths. Every trie
//! gets a root entry, whose `levels` say which longer lengths exist in it; a trie that had no
//! root of its own gets the verdict the wildcard fallback would have given (default deny when
//! the endpoint is isolated, else decision 0, "not selected"), which is exact: a peer trie
//! holds every wildcard prefix, so the wildcard trie can only add its root.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::abi;
use crate::endpoint::{Endpoint, EndpointId, Endpoints, Resolved};
use crate::error::{CompileError, EvaluateError};
use crate::identity::{cidr_label, Derived, Identity, IdentityAllocator, LabelSet};
use crate::ipcache::IpCache;
use crate::packet::{Packet, Peer, L4};
use crate::policy::{
    Direction, L4Match, NamespaceScope, PeerSpec, Policy, PolicySet, PortSel, Rule,
};
use crate::prefix::{match_prefixes, L4Prefix};
use crate::verdict::{decide, Action, DirectionVerdict, Reason, Verdict};

/// Map sizes the kernel side was created with.
#[derive(Debug, Clone, Copy)]
pub struct CompileOptions {
    pub policy_map_capacity: usize,
    pub ipcache_capacity: usize,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self {
            policy_map_capacity: 65_536,
            ipcache_capacity: 65_536,
        }
    }
}

/// An index into the decision table; 0 is reserved for "no entry" (not selected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DecisionId(pub u32);

/// One policy map key. `peer == Identity::UNKNOWN` (0) is the wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PolicyKey {
    pub endpoint: EndpointId,
    pub direction: Direction,
    pub peer: Identity,
    pub l4: L4Prefix,
}

impl PolicyKey {
    pub fn to_map_key(&self) -> abi::PolicyMapKey {
        abi::PolicyMapKey {
            prefixlen: abi::POLICY_KEY_FIXED_BITS + u32::from(self.l4.len),
            endpoint_id: self.endpoint.0,
            peer_identity: self.peer.0,
            direction: match self.direction {
                Direction::Ingress => abi::DIRECTION_INGRESS,
                Direction::Egress => abi::DIRECTION_EGRESS,
            },
            protocol: self.l4.protocol,
            dport: self.l4.port.to_be_bytes(),
        }
    }
}

/// One policy map entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PolicyEntry {
    pub key: PolicyKey,
    pub action: Action,
    /// 0 only at a root: no policy selects the endpoint in this direction.
    pub decision: DecisionId,
    /// Root entries: `abi::LEVEL_*` of the longer entries of the same (endpoint, direction,
    /// peer).
    pub levels: u8,
}

impl PolicyEntry {
    pub fn to_map_value(&self) -> abi::PolicyMapValue {
        let action = match self.action {
            Action::Allow => abi::ACTION_ALLOW,
            Action::Deny => abi::ACTION_DENY,
            Action::Audit => abi::ACTION_AUDIT,
        };
        abi::PolicyMapValue {
            action,
            levels: self.levels,
            pad: [0; 2],
            decision_id: self.decision.0,
        }
    }
}

/// The compiler's output: everything the kernel maps need, plus the decision table that turns
/// a `decision_id` from a verdict event back into reason, policies and rules.
#[derive(Debug, Clone)]
pub struct Compiled {
    entries: Vec<PolicyEntry>,
    index: HashMap<PolicyKey, usize>,
    /// `decisions[i]` is decision id `i + 1`.
    decisions: Vec<DirectionVerdict>,
    ipcache: IpCache,
    identities: BTreeMap<EndpointId, Identity>,
}

/// A peer identity the compiler can write entries for.
struct Known<'a> {
    id: Identity,
    labels: LabelSet,
    /// A pod with this identity (all such pods are equivalent for every rule).
    pod: Option<&'a Endpoint>,
}

/// Where a rule's contribution goes: the wildcard trie (`None`) or one identity's.
type Target = Option<Identity>;

/// An L4 prefix a rule covers, with the rule's position in [`Scope::rules`].
type Contribution = (L4Prefix, usize);

/// One endpoint and direction being compiled.
struct Scope<'a> {
    ep: &'a Endpoint,
    dir: Direction,
    /// Policies that select the endpoint and isolate it in this direction.
    isolating: Vec<&'a Policy>,
    /// Every rule of every policy selecting the endpoint, in this direction.
    rules: Vec<(&'a Policy, &'a Rule)>,
}

struct Builder<'a> {
    set: &'a PolicySet,
    endpoints: &'a Endpoints,
    known: Vec<Known<'a>>,
    /// Positions in `known` of the pod identities carrying each label: a selector with
    /// `matchLabels` only needs to look at the identities with its first pair (without it,
    /// every rule looks at every identity, rules × identities per endpoint).
    by_label: HashMap<(&'a str, &'a str), Vec<usize>>,
    entries: Vec<PolicyEntry>,
    /// Every entry interns its verdict (20k times for 10k rules): foldhash, not SipHash (the
    /// keys come from the policies being applied, not from the network), and one hash per
    /// verdict through the entry API; hashing was a third of the compile time. The verdicts
    /// live only here until `decisions()` moves them out (a second copy, made and freed, was
    /// another sixth).
    interned: HashMap<DirectionVerdict, DecisionId, foldhash::fast::RandomState>,
}

/// Compile `set` for `endpoints`. Identities come from `alloc`, so ids stay stable across
/// compiles that share it.
pub fn compile(
    set: &PolicySet,
    endpoints: &Endpoints,
    alloc: &mut IdentityAllocator,
    opts: &CompileOptions,
) -> Result<Compiled, CompileError> {
    let derived = derive(set);

    // Pod identities, allocated in label-set order so a fresh allocator gives the same ids
    // whatever order the endpoints were added in.
    let ep_labels: Vec<(&Endpoint, LabelSet)> = endpoints
        .iter()
        .map(|ep| {
            (
                ep,
                derived.endpoint_labels(ep, &endpoints.namespace_labels(&ep.namespace)),
            )
        })
        .collect();
    let unique: BTreeSet<&LabelSet> = ep_labels.iter().map(|(_, l)| l).collect();
    let mut by_labels: HashMap<&LabelSet, Identity> = HashMap::new();
    for labels in unique {
        by_labels.insert(labels, alloc.allocate(labels)?);
    }
    let mut identities = BTreeMap::new();
    let mut known: BTreeMap<Identity, Known> = BTreeMap::new();
    for (ep, labels) in &ep_labels {
        let id = by_labels.get(labels).copied().unwrap_or(Identity::UNKNOWN);
        identities.insert(ep.id, id);
        known.entry(id).or_insert_with(|| Known {
            id,
            labels: labels.clone(),
            pod: Some(ep),
        });
    }

    // The ipcache: defaults, policy prefixes, then the host and pods (exact addresses win).
    let mut ipcache = IpCache::new();
    for default in ["0.0.0.0/0", "::/0"] {
        if let Ok(net) = default.parse::<IpNet>() {
            ipcache.insert(net, Identity::WORLD);
        }
    }
    for p in &derived.prefixes {
        ipcache.insert(*p, alloc.allocate(&derived.cidr_labels(*p))?);
    }
    for ip in endpoints.host_ips() {
        ipcache.insert(IpNet::from(*ip), Identity::HOST);
    }
    for (ep, _) in &ep_labels {
        for ip in &ep.ips {
            ipcache.insert(
                IpNet::from(*ip),
                identities.get(&ep.id).copied().unwrap_or(Identity::UNKNOWN),
            );
        }
    }
    if ipcache.len() > opts.ipcache_capacity {
        return Err(CompileError::Capacity {
            map: "ipcache",
            needed: ipcache.len(),
            capacity: opts.ipcache_capacity,
            largest: format!(
                "{} endpoint addresses, {} policy prefixes",
                ep_labels.iter().map(|(e, _)| e.ips.len()).sum::<usize>(),
                derived.prefixes.len()
            ),
        });
    }
    // World and CIDR identities that are reachable through the ipcache.
    for (_, id) in ipcache.iter() {
        if *id != Identity::HOST && !known.contains_key(id) {
            let labels = alloc.labels(*id).cloned().unwrap_or_default();
            known.insert(
                *id,
                Known {
                    id: *id,
                    labels,
                    pod: None,
                },
            );
        }
    }

    let mut b = Builder {
        set,
        endpoints,
        by_label: HashMap::new(),
        known: known.into_values().collect(),
        entries: Vec::new(),
        interned: HashMap::default(),
    };
    for (i, k) in b.known.iter().enumerate() {
        for (key, value) in k.pod.iter().flat_map(|p| p.labels.iter()) {
            b.by_label
                .entry((key.as_str(), value.as_str()))
                .or_default()
                .push(i);
        }
    }
    let mut per_endpoint: Vec<(usize, &Endpoint)> = Vec::new();
    for ep in endpoints.iter() {
        let before = b.entries.len();
        for dir in Direction::BOTH {
            b.endpoint_direction(ep, dir);
        }
        per_endpoint.push((b.entries.len() - before, ep));
    }
    if b.entries.len() > opts.policy_map_capacity {
        per_endpoint.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
        let largest: Vec<String> = per_endpoint
            .iter()
            .take(3)
            .map(|(n, ep)| format!("{} (endpoint {}) {n}", ep.display_name(), ep.id))
            .collect();
        return Err(CompileError::Capacity {
            map: "policy",
            needed: b.entries.len(),
            capacity: opts.policy_map_capacity,
            largest: largest.join(", "),
        });
    }
    let decisions = b.decisions();
    let mut entries = b.entries;
    entries.sort_by_key(|e| e.key);
    let index = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.key, i))
        .collect();
    Ok(Compiled {
        entries,
        index,
        decisions,
        ipcache,
        identities,
    })
}

/// Prefixes and egress named ports the policies make security-relevant.
fn derive(set: &PolicySet) -> Derived {
    let mut d = Derived::default();
    for p in set.policies() {
        for dir in Direction::BOTH {
            for r in p.rules(dir) {
                for spec in r.peers.iter().flatten() {
                    if let PeerSpec::IpBlock(b) = spec {
                        d.prefixes.insert(b.cidr);
                        d.prefixes.extend(b.except.iter().copied());
                    }
                }
                if dir == Direction::Egress {
                    for m in r.traffic.iter().flatten() {
                        if let L4Match::Port {
                            protocol,
                            port: PortSel::Named(name),
                        } = m
                        {
                            d.egress_port_names.insert((name.clone(), *protocol));
                        }
                    }
                }
            }
        }
    }
    d
}

impl<'a> Builder<'a> {
    fn intern(&mut self, v: DirectionVerdict) -> DecisionId {
        let next = DecisionId(u32::try_from(self.interned.len() + 1).unwrap_or(u32::MAX));
        *self.interned.entry(v).or_insert(next)
    }

    /// The interned verdicts in id order: `[i]` is decision id `i + 1`.
    fn decisions(&mut self) -> Vec<DirectionVerdict> {
        let mut by_id: Vec<(DecisionId, DirectionVerdict)> =
            self.interned.drain().map(|(v, id)| (id, v)).collect();
        by_id.sort_unstable_by_key(|(id, _)| id.0);
        by_id.into_iter().map(|(_, v)| v).collect()
    }

    fn push(
        &mut self,
        endpoint: EndpointId,
        direction: Direction,
        peer: Identity,
        l4: L4Prefix,
        v: Option<DirectionVerdict>,
        levels: u8,
    ) {
        let (action, decision) = match v {
            Some(v) => (v.action, self.intern(v)),
            None => (Action::Allow, DecisionId(0)),
        };
        self.entries.push(PolicyEntry {
            key: PolicyKey {
                endpoint,
                direction,
                peer,
                l4,
            },
            action,
            decision,
            levels,
        });
    }

    /// The known identities that `specs` can select, in `known` order: all of them, unless
    /// every spec is a pod selector with `matchLabels`, then only those with one of the
    /// first pairs (a pod lacking it cannot match).
    fn candidates<'s>(
        &'s self,
        specs: &[PeerSpec],
    ) -> Box<dyn Iterator<Item = &'s Known<'a>> + 's> {
        let mut picked: Vec<usize> = Vec::new();
        for spec in specs {
            let first = match spec {
                PeerSpec::Pods { pods, .. } => pods.match_labels.iter().next(),
                PeerSpec::IpBlock(_) => None,
            };
            let Some((key, value)) = first else {
                return Box::new(self.known.iter());
            };
            if let Some(ids) = self.by_label.get(&(key.as_str(), value.as_str())) {
                picked.extend_from_slice(ids);
            }
        }
        picked.sort_unstable();
        picked.dedup();
        Box::new(picked.into_iter().filter_map(|i| self.known.get(i)))
    }

    /// Does a peer spec select this identity? Decided on identity labels, independently of the
    /// evaluator's address-based view, which is what makes the agreement test meaningful.
    fn spec_selects(&self, spec: &PeerSpec, k: &Known) -> bool {
        match spec {
            PeerSpec::Pods { namespaces, pods } => {
                let Some(pod) = k.pod else { return false };
                let ns_ok = match namespaces {
                    NamespaceScope::Own(ns) => &pod.namespace == ns,
                    NamespaceScope::Matching(sel) => {
                        sel.matches(&self.endpoints.namespace_labels(&pod.namespace))
                    }
                };
                ns_ok && pods.matches(&pod.labels)
            }
            PeerSpec::IpBlock(b) => {
                k.labels.contains(&cidr_label(b.cidr))
                    && !b.except.iter().any(|x| k.labels.contains(&cidr_label(*x)))
            }
        }
    }

    fn endpoint_direction(&mut self, ep: &'a Endpoint, dir: Direction) {
        // The node is always allowed; one root entry per endpoint and direction says so.
        self.push(
            ep.id,
            dir,
            Identity::HOST,
            L4Prefix::ANY,
            Some(DirectionVerdict::simple(dir, Reason::Host)),
            0,
        );

        let selecting: Vec<&'a Policy> = self
            .set
            .policies()
            .iter()
            .filter(|p| p.selects(&ep.namespace, &ep.labels))
            .collect();
        let scope = Scope {
            ep,
            dir,
            isolating: selecting
                .iter()
                .copied()
                .filter(|p| p.isolates(dir))
                .collect(),
            rules: selecting
                .iter()
                .flat_map(|p| p.rules(dir).iter().map(move |r| (*p, r)))
                .collect(),
        };
        if scope.rules.is_empty() && scope.isolating.is_empty() {
            return;
        }
        let contrib = self.contributions(&scope);
        let wild: &[Contribution] = contrib.get(&None).map_or(&[], Vec::as_slice);
        // The wildcard trie (with the default verdict at its root when the pod is isolated) ...
        self.trie(&scope, Identity::UNKNOWN, wild, &[]);
        // ... and one trie per identity that rules name, with the wildcard rules folded in.
        for (target, own) in &contrib {
            if let Some(id) = target {
                self.trie(&scope, *id, own, wild);
            }
        }
    }

    /// Every (target, prefix, rule) that the rules of `scope` contribute.
    fn contributions(&self, scope: &Scope<'a>) -> BTreeMap<Target, Vec<Contribution>> {
        let (ep, dir) = (scope.ep, scope.dir);
        let mut contrib: BTreeMap<Target, Vec<Contribution>> = BTreeMap::new();
        let mut add = |target: Target, prefixes: Vec<L4Prefix>, ri: usize| {
            if !prefixes.is_empty() {
                contrib.entry(target).or_default().extend(
                    prefixes
                        .into_iter()
                        .flat_map(L4Prefix::to_levels)
                        .map(|p| (p, ri)),
                );
            }
        };
        for (ri, (_, rule)) in scope.rules.iter().enumerate() {
            let traffic: Vec<&L4Match> = rule.traffic.iter().flatten().collect();
            // The prefixes of the rule's named (or unnamed) traffic selectors, named ports
            // resolved on `owner`.
            let prefixes_for = |owner: Option<&Endpoint>, named: bool| -> Vec<L4Prefix> {
                if rule.traffic.is_none() {
                    return if named {
                        Vec::new()
                    } else {
                        vec![L4Prefix::ANY]
                    };
                }
                traffic
                    .iter()
                    .filter(|m| is_named(m) == named)
                    .flat_map(|m| match_prefixes(m, owner))
                    .collect()
            };
            match &rule.peers {
                None if dir == Direction::Ingress => {
                    // Every peer; named ports are the selected pod's own.
                    let mut all = prefixes_for(Some(ep), false);
                    all.extend(prefixes_for(Some(ep), true));
                    add(None, all, ri);
                }
                None => {
                    // Every peer; named ports resolve on each peer pod, so they go to that pod's
                    // identity trie rather than the wildcard.
                    add(None, prefixes_for(None, false), ri);
                    for k in &self.known {
                        add(Some(k.id), prefixes_for(k.pod, true), ri);
                    }
                }
                Some(specs) => {
                    for k in self
                        .candidates(specs)
                        .filter(|k| specs.iter().any(|s| self.spec_selects(s, k)))
                    {
                        let owner = if dir == Direction::Ingress {
                            Some(ep)
                        } else {
                            k.pod
                        };
                        let mut all = prefixes_for(owner, false);
                        all.extend(prefixes_for(owner, true));
                        add(Some(k.id), all, ri);
                    }
                }
            }
        }
        contrib
    }

    /// Write the entries of one peer's trie: every prefix of `own` and `wild`, each with the
    /// verdict of all rules whose prefix contains it, and the root.
    fn trie(
        &mut self,
        scope: &Scope<'a>,
        peer: Identity,
        own: &[Contribution],
        wild: &[Contribution],
    ) {
        let all: Vec<Contribution> = own.iter().chain(wild).copied().collect();
        let mut prefixes: BTreeSet<L4Prefix> = all.iter().map(|(p, _)| *p).collect();
        // The root: the rules for any traffic, or the default when isolated; without either,
        // "not selected" (decision 0), as if there were no entry at all.
        let root_verdict = (prefixes.contains(&L4Prefix::ANY) || !scope.isolating.is_empty())
            .then(|| self.verdict_at(scope, &all, L4Prefix::ANY));
        prefixes.remove(&L4Prefix::ANY);
        if root_verdict.is_none() && prefixes.is_empty() {
            return; // the same as no entry: not selected
        }
        let mut levels = 0;
        for at in &prefixes {
            levels |= match at.len {
                8 => abi::LEVEL_PROTO,
                16 => abi::LEVEL_BLOCK,
                _ => abi::LEVEL_EXACT,
            };
        }
        self.push(
            scope.ep.id,
            scope.dir,
            peer,
            L4Prefix::ANY,
            root_verdict,
            levels,
        );
        for at in prefixes {
            let v = self.verdict_at(scope, &all, at);
            self.push(scope.ep.id, scope.dir, peer, at, Some(v), 0);
        }
    }

    fn verdict_at(
        &self,
        scope: &Scope<'a>,
        all: &[Contribution],
        at: L4Prefix,
    ) -> DirectionVerdict {
        let matched: Vec<(&Policy, &Rule)> = all
            .iter()
            .filter(|(p, _)| p.contains(at))
            .filter_map(|(_, ri)| scope.rules.get(*ri).copied())
            .collect();
        decide(scope.dir, &scope.isolating, &matched)
    }
}

fn is_named(m: &L4Match) -> bool {
    matches!(
        m,
        L4Match::Port {
            port: PortSel::Named(_),
            ..
        }
    )
}

impl Compiled {
    /// Policy map entries, sorted by key.
    pub fn entries(&self) -> &[PolicyEntry] {
        &self.entries
    }

    pub fn ipcache(&self) -> &IpCache {
        &self.ipcache
    }

    /// The verdict a decision id stands for (id 0 is "no entry").
    pub fn decision(&self, id: DecisionId) -> Option<&DirectionVerdict> {
        let i = usize::try_from(id.0).ok()?.checked_sub(1)?;
        self.decisions.get(i)
    }

    /// The decision table, in id order starting at 1.
    pub fn decisions(&self) -> impl Iterator<Item = (DecisionId, &DirectionVerdict)> {
        self.decisions
            .iter()
            .enumerate()
            .map(|(i, v)| (DecisionId(u32::try_from(i + 1).unwrap_or(u32::MAX)), v))
    }

    pub fn endpoint_identity(&self, id: EndpointId) -> Option<Identity> {
        self.identities.get(&id).copied()
    }

    /// `(key, value)` pairs ready for the policy LPM trie.
    pub fn policy_map_entries(&self) -> Vec<(abi::PolicyMapKey, abi::PolicyMapValue)> {
        self.entries
            .iter()
            .map(|e| (e.key.to_map_key(), e.to_map_value()))
            .collect()
    }

    /// `(key, value)` pairs ready for the ipcache LPM trie.
    pub fn ipcache_map_entries(&self) -> Vec<(abi::IpcacheMapKey, abi::IpcacheMapValue)> {
        self.ipcache
            .iter()
            .map(|(net, id)| {
                (
                    abi::IpcacheMapKey::from_net(*net),
                    abi::IpcacheMapValue {
                        identity: id.0,
                        pad: 0,
                    },
                )
            })
            .collect()
    }

    fn entry(
        &self,
        endpoint: EndpointId,
        direction: Direction,
        peer: Identity,
        l4: L4Prefix,
    ) -> Option<&PolicyEntry> {
        let key = PolicyKey {
            endpoint,
            direction,
            peer,
            l4,
        };
        self.index.get(&key).and_then(|i| self.entries.get(*i))
    }

    /// The kernel's lookup, in user space: the root of the peer's entries, else the
    /// wildcard's, else "not selected"; then the levels the root names, longest first.
    pub fn lookup(
        &self,
        endpoint: EndpointId,
        direction: Direction,
        peer: Identity,
        l4: L4,
    ) -> (Option<DecisionId>, DirectionVerdict) {
        let packet = L4Prefix::of_packet(l4);
        let found = [peer, Identity::UNKNOWN].into_iter().find_map(|p| {
            self.entry(endpoint, direction, p, L4Prefix::ANY)
                .map(|root| (p, root))
        });
        let hit = found.map(|(p, root)| {
            [
                (abi::LEVEL_EXACT, 24),
                (abi::LEVEL_BLOCK, 16),
                (abi::LEVEL_PROTO, 8),
            ]
            .into_iter()
            .filter(|(bit, _)| root.levels & bit != 0)
            .find_map(|(_, len)| self.entry(endpoint, direction, p, packet.truncate(len)))
            .unwrap_or(root)
        });
        match hit.and_then(|e| self.decision(e.decision).map(|v| (e.decision, v))) {
            Some((id, v)) => (Some(id), v.clone()),
            None => (
                None,
                DirectionVerdict::simple(direction, Reason::NotSelected),
            ),
        }
    }

    /// The whole datapath in user space: resolve both sides through the ipcache, look up
    /// egress at the source endpoint and ingress at the destination endpoint.
    pub fn evaluate(
        &self,
        endpoints: &Endpoints,
        packet: &Packet,
    ) -> Result<Verdict, EvaluateError> {
        let side = |peer: Peer| -> Result<(Option<EndpointId>, Identity), EvaluateError> {
            match peer {
                Peer::Endpoint(id) => {
                    let identity = self
                        .identities
                        .get(&id)
                        .copied()
                        .ok_or(EvaluateError::UnknownEndpoint(id))?;
                    Ok((Some(id), identity))
                }
                Peer::Ip(ip) => {
                    let local = match endpoints.resolve_ip(ip) {
                        Resolved::Endpoint(ep) => Some(ep.id),
                        _ => None,
                    };
                    Ok((local, self.identity_of(ip)))
                }
            }
        };
        let (src_ep, src_id) = side(packet.src)?;
        let (dst_ep, dst_id) = side(packet.dst)?;
        let l4 = packet.l4.normalized();
        let egress = src_ep.map(|ep| self.lookup(ep, Direction::Egress, dst_id, l4).1);
        let ingress = dst_ep.map(|ep| self.lookup(ep, Direction::Ingress, src_id, l4).1);
        Ok(Verdict::combine(egress, ingress))
    }

    /// The identity the ipcache gives an address.
    pub fn identity_of(&self, ip: IpAddr) -> Identity {
        self.ipcache
            .lookup(ip)
            .map_or(Identity::WORLD, |(_, id)| id)
    }
}
