//! Accumulating records into nodes and edges; `finish` turns the sets and samples into the
//! counts the page shows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use fathom_model::l7::L7Record;
use fathom_model::{
    DropRecord, Endpoint, Flow, FlowEndReason, FlowEvent, L4Protocol, Record, Timestamp, Traffic,
};

use super::{
    is_local_chatter, percentile_ms, verdict_action, workload_name, Edge, EdgeStatus, Grouping,
    L7Stats, Node, NodeKind, ServiceMap, Totals, BENIGN_REASONS, WORLD,
};

/// What the map needs of a flow's latest record (a whole `Flow` per flow would be copied
/// for every flow in the window on every refresh).
struct FlowSnap {
    started_in_window: bool,
    ended: bool,
    reset: bool,
    traffic: Traffic,
}

#[derive(Default)]
struct EdgeAcc {
    ports: BTreeSet<String>,
    /// flow_id → its latest record's figures.
    flows: HashMap<String, FlowSnap>,
    drops: u64,
    benign_drops: u64,
    drop_reasons: BTreeMap<String, u64>,
    l7_protocols: BTreeSet<String>,
    l7_requests: u64,
    l7_errors: u64,
    latencies_ns: Vec<u64>,
    verdicts: BTreeMap<String, u64>,
}

/// Drops between two nodes, kept apart until the end: a dropped reply (server → client)
/// belongs on the client → server edge of its conversation, which may not exist yet when
/// the drop is read.
#[derive(Default)]
struct DropAcc {
    drops: u64,
    benign: u64,
    reasons: BTreeMap<String, u64>,
    ports: BTreeSet<String>,
}

pub(super) struct Builder<'a> {
    grouping: Grouping,
    since: Timestamp,
    /// External IPs that get a node of their own.
    ip_nodes: &'a BTreeSet<String>,
    nodes: BTreeMap<String, Node>,
    edges: BTreeMap<(String, String), EdgeAcc>,
    drops: BTreeMap<(String, String), DropAcc>,
    totals: Totals,
}

fn port_label(p: L4Protocol, port: u16) -> String {
    match p {
        L4Protocol::Tcp | L4Protocol::Udp | L4Protocol::Sctp => format!("{p}/{port}"),
        _ => p.name(),
    }
}

fn is_benign(reason: &str) -> bool {
    BENIGN_REASONS.contains(&reason)
}

impl<'a> Builder<'a> {
    pub(super) fn new(
        grouping: Grouping,
        since: Timestamp,
        ip_nodes: &'a BTreeSet<String>,
    ) -> Self {
        Builder {
            grouping,
            since,
            ip_nodes,
            nodes: BTreeMap::new(),
            edges: BTreeMap::new(),
            drops: BTreeMap::new(),
            totals: Totals::default(),
        }
    }

    fn node_id(&mut self, ep: &Endpoint) -> String {
        let (id, label, kind) = match (&ep.pod, self.grouping) {
            (Some(pod), Grouping::Pod) => (
                ep.pod_name().unwrap_or_else(|| pod.clone()),
                pod.clone(),
                NodeKind::Pod,
            ),
            (Some(pod), Grouping::Workload) => {
                let w = workload_name(ep, pod);
                let id = match &ep.namespace {
                    Some(ns) => format!("{ns}/{w}"),
                    None => w.clone(),
                };
                (id, w, NodeKind::Workload)
            }
            (None, _) => {
                let ip = ep.ip.to_string();
                if self.ip_nodes.contains(&ip) {
                    (ip.clone(), ip, NodeKind::Ip)
                } else {
                    (WORLD.to_string(), "world".to_string(), NodeKind::World)
                }
            }
        };
        let is_pod = ep.pod.is_some();
        let n = self.nodes.entry(id.clone()).or_insert_with(|| Node {
            id: id.clone(),
            label,
            namespace: if is_pod { ep.namespace.clone() } else { None },
            kind,
            labels: BTreeMap::new(),
            pods: BTreeSet::new(),
            flows_out: 0,
            flows_in: 0,
            bytes_sent: 0,
            bytes_received: 0,
            drops: 0,
            benign_drops: 0,
        });
        if is_pod {
            if n.labels.is_empty() {
                n.labels = ep.labels.clone();
            }
            if kind == NodeKind::Workload {
                if let Some(p) = ep.pod_name() {
                    n.pods.insert(p);
                }
            }
        }
        id
    }

    fn edge(&mut self, src: &Endpoint, dst: &Endpoint) -> &mut EdgeAcc {
        let s = self.node_id(src);
        let d = self.node_id(dst);
        self.edges.entry((s, d)).or_default()
    }

    pub(super) fn add(&mut self, r: &Record) {
        self.totals.records += 1;
        let (s, d) = super::endpoints(r);
        if is_local_chatter(s, d) {
            self.totals.local += 1;
            return;
        }
        match r {
            Record::Flow(f) => self.add_flow(f),
            Record::Drop(d) => self.add_drop(d),
            Record::L7(l) => self.add_l7(l),
            // Record kinds added after this map (policy verdicts): read what they share.
            #[allow(unreachable_patterns)]
            other => self.add_other(other),
        }
    }

    fn add_flow(&mut self, f: &Flow) {
        let started = f.first_seen >= self.since;
        let e = self.edge(&f.source, &f.destination);
        e.ports
            .insert(port_label(f.l4.protocol, f.destination.port));
        // Counters are cumulative: the latest record of a flow has them all.
        e.flows.insert(
            f.flow_id.clone(),
            FlowSnap {
                started_in_window: started,
                ended: f.event == FlowEvent::End,
                reset: f.end_reason == Some(FlowEndReason::Rst),
                traffic: f.traffic,
            },
        );
    }

    fn add_drop(&mut self, d: &DropRecord) {
        let n = 1 + u64::from(d.suppressed);
        let benign = is_benign(&d.reason);
        self.totals.drops += n;
        match (&d.source, &d.destination) {
            (Some(s), Some(dst)) => {
                let key = (self.node_id(s), self.node_id(dst));
                let acc = self.drops.entry(key).or_default();
                if benign {
                    acc.benign += n;
                } else {
                    acc.drops += n;
                }
                *acc.reasons.entry(d.reason.clone()).or_default() += n;
                if let Some(p) = d.protocol {
                    acc.ports.insert(port_label(p, dst.port));
                }
            }
            (Some(one), None) | (None, Some(one)) => {
                let id = self.node_id(one);
                if let Some(node) = self.nodes.get_mut(&id) {
                    if benign {
                        node.benign_drops += n;
                    } else {
                        node.drops += n;
                    }
                }
            }
            (None, None) => self.totals.drops_unattributed += n,
        }
    }

    fn add_l7(&mut self, l: &L7Record) {
        let x = &l.exchange;
        self.totals.l7_requests += 1;
        self.totals.l7_errors += u64::from(x.error);
        let e = self.edge(&l.source, &l.destination);
        e.l7_protocols
            .insert(x.detail.protocol().name().to_string());
        e.l7_requests += 1;
        e.l7_errors += u64::from(x.error);
        if let Some(ns) = x.latency_ns {
            e.latencies_ns.push(ns);
        }
    }

    /// A record type this map was not written for: count it, and when it names two endpoints
    /// and a policy action, count that verdict on their edge.
    fn add_other(&mut self, r: &Record) {
        let Ok(v) = serde_json::to_value(r) else {
            self.totals.other += 1;
            return;
        };
        let ep = |k: &str| serde_json::from_value::<Endpoint>(v[k].clone()).ok();
        match (verdict_action(&v), ep("source"), ep("destination")) {
            (Some(action), Some(s), Some(d)) => self.add_verdict(&s, &d, action),
            _ => self.totals.other += 1,
        }
    }

    pub(super) fn add_verdict(&mut self, src: &Endpoint, dst: &Endpoint, action: String) {
        self.totals.verdicts += 1;
        let e = self.edge(src, dst);
        *e.verdicts.entry(action).or_default() += 1;
    }

    /// Put each pair's drops on its conversation's edge: the same direction when that edge
    /// exists, else the reverse one (a dropped reply), else a drops-only edge.
    fn place_drops(&mut self) {
        for ((s, d), acc) in std::mem::take(&mut self.drops) {
            let forward = (s, d);
            let reverse = (forward.1.clone(), forward.0.clone());
            let reply = !self.edges.contains_key(&forward) && self.edges.contains_key(&reverse);
            let e = self
                .edges
                .entry(if reply { reverse } else { forward })
                .or_default();
            e.drops += acc.drops;
            e.benign_drops += acc.benign;
            for (r, n) in acc.reasons {
                *e.drop_reasons.entry(r).or_default() += n;
            }
            // A reply's destination port is the client's ephemeral one: not a service port.
            if !reply {
                e.ports.extend(acc.ports);
            }
        }
    }

    pub(super) fn finish(mut self, since: Timestamp, until: Timestamp) -> ServiceMap {
        self.place_drops();
        let secs = (until.as_nanos().saturating_sub(since.as_nanos()) / 1_000_000_000).max(1);
        let mut edges = Vec::with_capacity(self.edges.len());
        for ((s, d), acc) in std::mem::take(&mut self.edges) {
            let edge = self.finish_edge(s, d, acc, secs);
            edges.push(edge);
        }
        ServiceMap {
            window_seconds: secs,
            since,
            until,
            grouping: self.grouping,
            nodes: self.nodes.into_values().collect(),
            edges,
            totals: self.totals,
            benign_reasons: BENIGN_REASONS,
        }
    }

    fn finish_edge(&mut self, s: String, d: String, acc: EdgeAcc, secs: u64) -> Edge {
        let mut e = Edge {
            id: format!("{s}->{d}"),
            source: s,
            target: d,
            ports: acc.ports,
            flows: acc.flows.len() as u64,
            new_flows: 0,
            flow_rate: 0.0,
            active: 0,
            resets: 0,
            bytes_out: 0,
            bytes_in: 0,
            packets_out: 0,
            packets_in: 0,
            drops: acc.drops,
            benign_drops: acc.benign_drops,
            drop_reasons: acc.drop_reasons,
            l7: None,
            verdicts: acc.verdicts,
            status: EdgeStatus::Ok,
        };
        for f in acc.flows.values() {
            e.new_flows += u64::from(f.started_in_window);
            e.active += u64::from(!f.ended);
            e.resets += u64::from(f.reset);
            e.bytes_out += f.traffic.bytes_out;
            e.bytes_in += f.traffic.bytes_in;
            e.packets_out += f.traffic.packets_out;
            e.packets_in += f.traffic.packets_in;
        }
        e.flow_rate = e.new_flows as f64 / secs as f64;
        self.totals.flows += e.flows;
        if acc.l7_requests > 0 {
            let mut lat = acc.latencies_ns;
            lat.sort_unstable();
            e.l7 = Some(L7Stats {
                protocols: acc.l7_protocols,
                requests: acc.l7_requests,
                errors: acc.l7_errors,
                error_rate: acc.l7_errors as f64 / acc.l7_requests as f64,
                latency_p50_ms: percentile_ms(&lat, 50),
                latency_p95_ms: percentile_ms(&lat, 95),
            });
        }
        let verdict = |a: &str| e.verdicts.get(a).copied().unwrap_or(0) > 0;
        e.status = if e.drops > 0 || verdict("deny") {
            EdgeStatus::Drop
        } else if verdict("audit") {
            EdgeStatus::Audit
        } else if e.resets > 0 || e.l7.as_ref().is_some_and(|l| l.errors > 0) {
            EdgeStatus::Error
        } else {
            EdgeStatus::Ok
        };
        if let Some(n) = self.nodes.get_mut(&e.source) {
            n.flows_out += e.flows;
            n.bytes_sent += e.bytes_out;
            n.bytes_received += e.bytes_in;
            n.drops += e.drops;
            n.benign_drops += e.benign_drops;
        }
        if let Some(n) = self.nodes.get_mut(&e.target) {
            n.flows_in += e.flows;
            n.bytes_sent += e.bytes_in;
            n.bytes_received += e.bytes_out;
            // A pod talking to itself counts its drops once.
            if e.source != e.target {
                n.drops += e.drops;
                n.benign_drops += e.benign_drops;
            }
        }
        e
    }
}
