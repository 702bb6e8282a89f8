//! The pure evaluator: Kubernetes NetworkPolicy semantics plus the Fathom extension, decided
//! directly from policies and the inventory, without identities, prefixes or maps. It is the
//! oracle the compiled maps (and later the kernel) are tested against, so it stays literal.

use std::net::IpAddr;

use crate::endpoint::{Endpoint, Endpoints, Resolved};
use crate::error::EvaluateError;
use crate::packet::{Packet, Peer, L4};
use crate::policy::{
    Direction, IpBlock, L4Match, NamespaceScope, PeerSpec, Policy, PolicySet, PortSel, Rule,
};
use crate::verdict::{decide, DirectionVerdict, Reason, Verdict};

/// Decide a packet: allowed only if egress from the source pod is allowed (when the source is
/// a pod) and ingress to the destination pod is allowed (when the destination is a pod).
pub fn evaluate(
    set: &PolicySet,
    endpoints: &Endpoints,
    packet: &Packet,
) -> Result<Verdict, EvaluateError> {
    let src = resolve(endpoints, packet.src)?;
    let dst = resolve(endpoints, packet.dst)?;
    let l4 = packet.l4.normalized();
    let egress = match src {
        Resolved::Endpoint(ep) => Some(direction(
            set,
            endpoints,
            ep,
            Direction::Egress,
            dst,
            dst,
            l4,
        )),
        _ => None,
    };
    let ingress = match dst {
        Resolved::Endpoint(ep) => Some(direction(
            set,
            endpoints,
            ep,
            Direction::Ingress,
            src,
            dst,
            l4,
        )),
        _ => None,
    };
    Ok(Verdict::combine(egress, ingress))
}

fn resolve(endpoints: &Endpoints, peer: Peer) -> Result<Resolved<'_>, EvaluateError> {
    match peer {
        Peer::Endpoint(id) => endpoints
            .get(id)
            .map(Resolved::Endpoint)
            .ok_or(EvaluateError::UnknownEndpoint(id)),
        Peer::Ip(ip) => Ok(endpoints.resolve_ip(ip)),
    }
}

/// One direction at `ep`. `peer` is the other side; `dst` is the packet's destination, which
/// owns the named ports (the selected pod for ingress, the peer pod for egress).
pub(crate) fn direction(
    set: &PolicySet,
    endpoints: &Endpoints,
    ep: &Endpoint,
    dir: Direction,
    peer: Resolved<'_>,
    dst: Resolved<'_>,
    l4: L4,
) -> DirectionVerdict {
    if peer == Resolved::Host {
        return DirectionVerdict::simple(dir, Reason::Host);
    }
    let mut isolating: Vec<&Policy> = Vec::new();
    let mut matched: Vec<(&Policy, &Rule)> = Vec::new();
    for p in set
        .policies()
        .iter()
        .filter(|p| p.selects(&ep.namespace, &ep.labels))
    {
        if p.isolates(dir) {
            isolating.push(p);
        }
        for r in p.rules(dir) {
            if peer_matches(endpoints, r, peer) && traffic_matches(r, dst, l4) {
                matched.push((p, r));
            }
        }
    }
    decide(dir, &isolating, &matched)
}

fn peer_matches(endpoints: &Endpoints, rule: &Rule, peer: Resolved<'_>) -> bool {
    match &rule.peers {
        None => true,
        Some(specs) => specs.iter().any(|s| spec_matches(endpoints, s, peer)),
    }
}

fn spec_matches(endpoints: &Endpoints, spec: &PeerSpec, peer: Resolved<'_>) -> bool {
    match (spec, peer) {
        (PeerSpec::Pods { namespaces, pods }, Resolved::Endpoint(e)) => {
            let ns_ok = match namespaces {
                NamespaceScope::Own(ns) => &e.namespace == ns,
                NamespaceScope::Matching(sel) => {
                    sel.matches(&endpoints.namespace_labels(&e.namespace))
                }
            };
            ns_ok && pods.matches(&e.labels)
        }
        (PeerSpec::Pods { .. }, _) => false,
        (PeerSpec::IpBlock(b), Resolved::External(ip)) => block_contains(b, ip),
        // A pod matches when one of its addresses is in cidr and none is in an except. For a
        // single-address pod this is plain address matching; the rule keeps a pod's answer
        // independent of which of its addresses a packet used, as identity-based enforcement
        // requires.
        (PeerSpec::IpBlock(b), Resolved::Endpoint(e)) => {
            e.ips.iter().any(|ip| b.cidr.contains(ip))
                && !b
                    .except
                    .iter()
                    .any(|x| e.ips.iter().any(|ip| x.contains(ip)))
        }
        // The node's own addresses never reach here (always allowed), and no ipBlock selects them.
        (PeerSpec::IpBlock(_), Resolved::Host) => false,
    }
}

fn block_contains(b: &IpBlock, ip: IpAddr) -> bool {
    b.cidr.contains(&ip) && !b.except.iter().any(|x| x.contains(&ip))
}

fn traffic_matches(rule: &Rule, dst: Resolved<'_>, l4: L4) -> bool {
    match &rule.traffic {
        None => true,
        Some(list) => list.iter().any(|m| l4_matches(m, dst, l4)),
    }
}

fn l4_matches(m: &L4Match, dst: Resolved<'_>, l4: L4) -> bool {
    match m {
        L4Match::Port { protocol, port } => {
            let Some((proto, dport)) = l4.port() else {
                return false;
            };
            if proto != *protocol {
                return false;
            }
            match port {
                PortSel::Any => true,
                PortSel::Range { first, last } => (*first..=*last).contains(&dport),
                PortSel::Named(name) => match dst {
                    Resolved::Endpoint(owner) => owner.named_port(name, proto) == Some(dport),
                    _ => false,
                },
            }
        }
        L4Match::Icmp {
            family,
            icmp_type,
            code,
        } => match l4.icmp() {
            Some((f, t, c)) => f == *family && t == *icmp_type && code.is_none_or(|want| want == c),
            None => false,
        },
    }
}
