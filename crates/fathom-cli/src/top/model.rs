//! What `fathom top` shows, computed from the agent's record stream: flows and pods ranked by
//! bytes, packets, flows or drops within the window. Pure, so it is tested without a terminal.

use std::collections::{BTreeMap, HashMap};

use fathom_model::{Endpoint, Flow, FlowEvent, Record};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Bytes,
    Packets,
    Flows,
    Drops,
}

impl SortKey {
    pub fn next(self) -> Self {
        match self {
            SortKey::Bytes => SortKey::Packets,
            SortKey::Packets => SortKey::Flows,
            SortKey::Flows => SortKey::Drops,
            SortKey::Drops => SortKey::Bytes,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SortKey::Bytes => "bytes",
            SortKey::Packets => "packets",
            SortKey::Flows => "flows",
            SortKey::Drops => "drops",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRow {
    pub source: String,
    pub destination: String,
    pub protocol: String,
    pub packets: u64,
    pub bytes: u64,
    /// Source → destination and back.
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub process: String,
    pub ended: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRow {
    pub pod: String,
    pub flows: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub packets: u64,
    pub drops: u64,
}

#[derive(Debug, Default)]
pub struct TopModel {
    flows: HashMap<String, (FlowRow, Option<String>, Option<String>)>,
    drops: BTreeMap<(String, String), u64>,
    pub records: u64,
    pub lost: u64,
}

fn name(e: &Endpoint) -> String {
    match e.pod_name() {
        Some(p) => p,
        None if e.ip.is_ipv6() => format!("[{}]:{}", e.ip, e.port),
        None => format!("{}:{}", e.ip, e.port),
    }
}

fn label(e: &Endpoint) -> String {
    match e.pod_name() {
        Some(p) => format!("{p}:{}", e.port),
        None => name(e),
    }
}

impl TopModel {
    pub fn apply(&mut self, r: &Record) {
        self.records += 1;
        match r {
            Record::Flow(f) => self.apply_flow(f),
            Record::Drop(d) => {
                let pod = d
                    .destination
                    .as_ref()
                    .and_then(Endpoint::pod_name)
                    .or_else(|| d.source.as_ref().and_then(Endpoint::pod_name))
                    .unwrap_or_else(|| "(host)".into());
                *self.drops.entry((pod, d.reason.clone())).or_default() +=
                    1 + u64::from(d.suppressed);
            }
            Record::L7(_) | Record::PolicyVerdict(_) | Record::Alert(_) => {}
        }
    }

    fn apply_flow(&mut self, f: &Flow) {
        let row = FlowRow {
            source: label(&f.source),
            destination: label(&f.destination),
            protocol: f.l4.protocol.name(),
            packets: f.traffic.packets_out + f.traffic.packets_in,
            bytes: f.traffic.bytes_out + f.traffic.bytes_in,
            bytes_out: f.traffic.bytes_out,
            bytes_in: f.traffic.bytes_in,
            process: f
                .process
                .as_ref()
                .or(f.destination_process.as_ref())
                .map(|p| format!("{}[{}]", p.comm, p.pid))
                .unwrap_or_default(),
            ended: f.event == FlowEvent::End,
        };
        let pods = (f.source.pod_name(), f.destination.pod_name());
        // Counters are cumulative per flow: the latest record replaces the previous one.
        self.flows.insert(f.flow_id.clone(), (row, pods.0, pods.1));
    }

    pub fn flows(&self, key: SortKey) -> Vec<FlowRow> {
        let mut rows: Vec<FlowRow> = self.flows.values().map(|(r, _, _)| r.clone()).collect();
        rows.sort_by(|a, b| {
            let k = |r: &FlowRow| match key {
                SortKey::Packets => r.packets,
                _ => r.bytes,
            };
            k(b).cmp(&k(a)).then_with(|| a.source.cmp(&b.source))
        });
        rows
    }

    pub fn pods(&self, key: SortKey) -> Vec<PodRow> {
        let mut by: BTreeMap<String, PodRow> = BTreeMap::new();
        for (row, src, dst) in self.flows.values() {
            // The source sent the flow's "out" half and received the "in" half; the
            // destination the other way round.
            for (pod, sent, received) in [
                (src, row.bytes_out, row.bytes_in),
                (dst, row.bytes_in, row.bytes_out),
            ] {
                let Some(p) = pod else { continue };
                let e = by.entry(p.clone()).or_insert_with(|| PodRow {
                    pod: p.clone(),
                    ..Default::default()
                });
                e.flows += 1;
                e.packets += row.packets;
                e.bytes_sent += sent;
                e.bytes_received += received;
            }
        }
        for ((pod, _), n) in &self.drops {
            let e = by.entry(pod.clone()).or_insert_with(|| PodRow {
                pod: pod.clone(),
                ..Default::default()
            });
            e.drops += n;
        }
        let mut rows: Vec<PodRow> = by.into_values().collect();
        rows.sort_by(|a, b| {
            let k = |r: &PodRow| match key {
                SortKey::Bytes => r.bytes_sent + r.bytes_received,
                SortKey::Packets => r.packets,
                SortKey::Flows => r.flows,
                SortKey::Drops => r.drops,
            };
            k(b).cmp(&k(a)).then_with(|| a.pod.cmp(&b.pod))
        });
        rows
    }

    /// (pod, reason, count), most first.
    pub fn drops(&self) -> Vec<(String, String, u64)> {
        let mut v: Vec<_> = self
            .drops
            .iter()
            .map(|((p, r), n)| (p.clone(), r.clone(), *n))
            .collect();
        v.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fathom_model::{DropRecord, L4Info, L4Protocol, TcpInfo, Timestamp, Traffic};

    fn ep(pod: &str, port: u16) -> Endpoint {
        let mut e = Endpoint::new("10.0.0.1".parse().unwrap(), port);
        if let Some((ns, p)) = pod.split_once('/') {
            e.namespace = Some(ns.into());
            e.pod = Some(p.into());
        }
        e
    }

    fn flow(id: &str, src: &str, dst: &str, bytes: u64, event: FlowEvent) -> Record {
        Record::from(Flow {
            time: Timestamp(1),
            flow_id: id.into(),
            event,
            source: ep(src, 40000),
            destination: ep(dst, 80),
            process: None,
            destination_process: None,
            l4: L4Info {
                protocol: L4Protocol::Tcp,
                tcp_flags: None,
                tcp_flags_out: None,
                tcp_flags_in: None,
                icmp_type: None,
                icmp_code: None,
            },
            traffic: Traffic {
                packets_out: 2,
                packets_in: 1,
                bytes_out: bytes,
                bytes_in: 0,
                payload_bytes_out: 0,
                payload_bytes_in: 0,
            },
            tcp: TcpInfo::default(),
            first_seen: Timestamp(1),
            last_seen: Timestamp(1),
            end_reason: None,
            interface: None,
            node: "n".into(),
        })
    }

    #[test]
    fn latest_record_per_flow_and_pod_totals() {
        let mut m = TopModel::default();
        m.apply(&flow("1", "x/a", "y/b", 100, FlowEvent::Start));
        m.apply(&flow("1", "x/a", "y/b", 1000, FlowEvent::End));
        m.apply(&flow("2", "x/c", "y/b", 500, FlowEvent::Start));
        m.apply(&Record::from(DropRecord {
            time: Timestamp(1),
            reason: "NO_SOCKET".into(),
            reason_code: 3,
            location: String::new(),
            interface: None,
            netns: None,
            source: Some(ep("x/a", 1)),
            destination: Some(ep("y/b", 7777)),
            protocol: None,
            length: 0,
            suppressed: 2,
            node: "n".into(),
        }));
        let flows = m.flows(SortKey::Bytes);
        assert_eq!(flows.len(), 2);
        assert_eq!(
            (flows[0].bytes, flows[0].ended, flows[0].source.as_str()),
            (1000, true, "x/a:40000")
        );
        let pods = m.pods(SortKey::Bytes);
        assert_eq!(pods[0].pod, "y/b");
        assert_eq!(
            (pods[0].flows, pods[0].bytes_received, pods[0].drops),
            (2, 1500, 3)
        );
        let by_drops = m.pods(SortKey::Drops);
        assert_eq!(by_drops[0].pod, "y/b");
        assert_eq!(
            m.drops(),
            vec![("y/b".to_string(), "NO_SOCKET".to_string(), 3)]
        );
        assert_eq!(m.records, 4);
    }
}
