//! The service map: who talks to whom over a recent window, aggregated from the hub's records
//! on the server so that the page is right on its first paint (the browser only sees what it
//! streamed since it opened). Pure: records in, nodes and edges out.
//!
//! Nodes are pods (or workloads), one node per external IP for the busiest few, and one
//! `reserved:world` node for the rest. Edges are directed client → server (a flow's `source` is
//! the side that opened it), and carry flow counts and rates, bytes, TCP resets, kernel drops
//! with their reasons, L7 request/error/latency figures and policy verdict counts.

mod build;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use fathom_model::{Endpoint, Record, Timestamp};
use serde::{Deserialize, Serialize};

use build::Builder;

/// External IPs beyond this many (the least busy ones) share the `world` node, so that a
/// scan or a CDN does not turn the map into confetti.
pub const MAX_IP_NODES: usize = 12;
pub const WORLD: &str = "reserved:world";

/// Drop reasons that do not mean a conversation lost a packet: data a socket still held, or
/// that arrived, when it closed (connection teardown), and copies of flooded frames that a
/// bridge delivered to pods they were not for (`OTHERHOST`: the addressee got its own copy).
/// They are real kernel drops and are counted and listed, but they do not mark an edge as
/// dropping: every short HTTP exchange produces some, and a map where every edge is red tells
/// nobody anything.
pub const BENIGN_REASONS: [&str; 3] = ["QUEUE_PURGE", "SOCKET_CLOSE", "OTHERHOST"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grouping {
    #[default]
    Pod,
    Workload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Pod,
    Workload,
    Ip,
    World,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub id: String,
    pub label: String,
    pub namespace: Option<String>,
    pub kind: NodeKind,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Workload nodes: the pods folded into them.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub pods: BTreeSet<String>,
    pub flows_out: u64,
    pub flows_in: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Kernel drops of packets from or to this node (suppressed ones included), benign
    /// reasons apart.
    pub drops: u64,
    pub benign_drops: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct L7Stats {
    pub protocols: BTreeSet<String>,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
}

/// Worst thing on the edge, which is what its colour shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeStatus {
    Ok,
    /// L7 errors or TCP resets.
    Error,
    /// An audit-mode policy would deny this traffic.
    Audit,
    /// Kernel drops (benign reasons apart) or policy denies.
    Drop,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Edge {
    /// `source->target`.
    pub id: String,
    pub source: String,
    pub target: String,
    /// Server side of the traffic: `tcp/80`, `udp/53`, `icmp`.
    pub ports: BTreeSet<String>,
    /// Distinct flows seen in the window.
    pub flows: u64,
    /// Flows whose first packet is in the window, and that per second.
    pub new_flows: u64,
    pub flow_rate: f64,
    /// Flows not ended as of their latest record.
    pub active: u64,
    pub resets: u64,
    /// Cumulative counters of those flows (latest record of each): out = source → target.
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub packets_in: u64,
    /// Kernel drops in either direction of this conversation, benign reasons apart.
    pub drops: u64,
    pub benign_drops: u64,
    /// Every reason, benign ones included.
    pub drop_reasons: BTreeMap<String, u64>,
    pub l7: Option<L7Stats>,
    /// Policy verdicts by action (`allow`, `deny`, `audit`).
    pub verdicts: BTreeMap<String, u64>,
    pub status: EdgeStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub records: u64,
    pub flows: u64,
    /// All kernel drops in the window, benign ones included.
    pub drops: u64,
    /// Drops without an IP header (nothing to draw an edge between).
    pub drops_unattributed: u64,
    pub l7_requests: u64,
    pub l7_errors: u64,
    pub verdicts: u64,
    /// Records between addresses that are not pods, where one is loopback, link-local,
    /// multicast or broadcast (router solicitations, mDNS, the host's own loopback): not
    /// services, so not on the map. The flow table still lists them.
    pub local: u64,
    /// Records of types this map does not know.
    pub other: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceMap {
    pub window_seconds: u64,
    pub since: Timestamp,
    pub until: Timestamp,
    pub grouping: Grouping,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    pub totals: Totals,
    /// [`BENIGN_REASONS`], so that the page need not keep its own copy.
    pub benign_reasons: [&'static str; 3],
}

/// Aggregate `records` with times in `[since, until]` (others are skipped).
pub fn aggregate<'r>(
    records: impl IntoIterator<Item = &'r Record> + Clone,
    since: Timestamp,
    until: Timestamp,
    grouping: Grouping,
) -> ServiceMap {
    let in_window = |r: &&Record| r.time() >= since && r.time() <= until;
    let ip_nodes = busiest_ips(records.clone().into_iter().filter(in_window));
    let mut b = Builder::new(grouping, since, &ip_nodes);
    for r in records.into_iter().filter(in_window) {
        b.add(r);
    }
    b.finish(since, until)
}

/// The external IPs seen most often (ties broken by address so the answer is stable).
fn busiest_ips<'r>(records: impl Iterator<Item = &'r Record>) -> BTreeSet<String> {
    let mut seen: HashMap<IpAddr, u64> = HashMap::new();
    for r in records {
        let (s, d) = endpoints(r);
        if is_local_chatter(s, d) {
            continue;
        }
        for ep in [s, d].into_iter().flatten().filter(|e| e.pod.is_none()) {
            *seen.entry(ep.ip).or_default() += 1;
        }
    }
    let mut v: Vec<(IpAddr, u64)> = seen.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.into_iter()
        .take(MAX_IP_NODES)
        .map(|(ip, _)| ip.to_string())
        .collect()
}

fn endpoints(r: &Record) -> (Option<&Endpoint>, Option<&Endpoint>) {
    match r {
        Record::Flow(f) => (Some(&f.source), Some(&f.destination)),
        Record::L7(l) => (Some(&l.source), Some(&l.destination)),
        Record::Drop(d) => (d.source.as_ref(), d.destination.as_ref()),
        Record::PolicyVerdict(v) => (Some(&v.source), Some(&v.destination)),
        Record::Alert(a) => (a.source.as_ref(), a.destination.as_ref()),
    }
}

fn link_scope(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            v.is_loopback()
                || v.is_link_local()
                || v.is_multicast()
                || v.is_broadcast()
                || v.is_unspecified()
        }
        IpAddr::V6(v) => {
            v.is_loopback()
                || v.is_multicast()
                || v.is_unspecified()
                || (v.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Neither side is a pod and one side is link-scope: see [`Totals::local`].
pub fn is_local_chatter(s: Option<&Endpoint>, d: Option<&Endpoint>) -> bool {
    let sides = [s, d];
    let known = sides.iter().flatten();
    !known.clone().any(|e| e.pod.is_some()) && known.clone().any(|e| link_scope(&e.ip))
}

/// A Kubernetes workload name for a pod: its app label, else the pod name without the
/// ReplicaSet/DaemonSet hash or StatefulSet ordinal that controllers append.
pub fn workload_name(ep: &Endpoint, pod: &str) -> String {
    for key in ["app.kubernetes.io/name", "app", "k8s-app"] {
        if let Some(v) = ep.labels.get(key).filter(|v| !v.is_empty()) {
            return v.clone();
        }
    }
    let hashy = |s: &str| {
        (5..=10).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes().any(|b| b.is_ascii_digit())
    };
    let mut parts: Vec<&str> = pod.split('-').collect();
    if parts.len() > 1
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
    {
        parts.pop();
    } else {
        // Up to two hash segments: `web-7d9c8f6b5-x2k4q` → `web`.
        for _ in 0..2 {
            if parts.len() > 1 && parts.last().is_some_and(|p| hashy(p)) {
                parts.pop();
            }
        }
    }
    parts.join("-")
}

/// Normalised policy action of a verdict record's JSON: `action`, or `verdict` as a string or
/// as an object with an `action`. Lowercase.
pub fn verdict_action(v: &serde_json::Value) -> Option<String> {
    let s = v["action"]
        .as_str()
        .or_else(|| v["verdict"].as_str())
        .or_else(|| v["verdict"]["action"].as_str())?;
    Some(s.to_ascii_lowercase())
}

/// Nearest-rank percentile of sorted nanoseconds, in milliseconds.
fn percentile_ms(sorted_ns: &[u64], pct: usize) -> Option<f64> {
    if sorted_ns.is_empty() {
        return None;
    }
    let rank = (pct * sorted_ns.len()).div_ceil(100).max(1);
    let ns = sorted_ns[rank.min(sorted_ns.len()) - 1];
    Some(ns as f64 / 1e6)
}

#[cfg(test)]
mod tests;
