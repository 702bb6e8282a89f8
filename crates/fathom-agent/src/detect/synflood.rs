//! SYN floods: per destination (address, port), the TCP connection attempts (flows whose first
//! packet is a SYN) in a sliding window and how many of them never completed the handshake
//! (no ACK from the initiator seen on a later record of the same flow). A flood is a high SYN
//! rate AND many half-open attempts; the source sending most of them is named (and may be
//! blocked) when it sent at least half.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use fathom_model::alert::kind;
use fathom_model::{Alert, Endpoint, Flow, FlowEvent, L4Protocol, Severity, TcpFlags};

use super::DetectConfig;

type DestKey = (IpAddr, u16);

#[derive(Default)]
struct DestState {
    syns: VecDeque<(u64, String, IpAddr)>,
    half_open: HashSet<String>,
    by_source: HashMap<IpAddr, u32>,
    endpoint: Option<Endpoint>,
    source_endpoints: HashMap<IpAddr, Endpoint>,
}

impl DestState {
    fn prune(&mut self, cutoff: u64, flows: &mut HashMap<String, DestKey>) {
        while self.syns.front().is_some_and(|(t, _, _)| *t < cutoff) {
            let Some((_, id, src)) = self.syns.pop_front() else {
                break;
            };
            self.half_open.remove(&id);
            flows.remove(&id);
            if let Some(c) = self.by_source.get_mut(&src) {
                *c -= 1;
                if *c == 0 {
                    self.by_source.remove(&src);
                    self.source_endpoints.remove(&src);
                }
            }
        }
    }
}

pub struct SynFloodDetector {
    window_ns: u64,
    cooldown_ns: u64,
    rate: f64,
    half_open: usize,
    max_tracked: usize,
    dests: HashMap<DestKey, DestState>,
    /// Flow id of each SYN in a window → its destination (to find it when the flow completes).
    flows: HashMap<String, DestKey>,
    last_alert: HashMap<DestKey, u64>,
}

impl SynFloodDetector {
    pub fn new(cfg: &DetectConfig) -> Self {
        SynFloodDetector {
            window_ns: cfg.window.as_nanos() as u64,
            cooldown_ns: cfg.cooldown.as_nanos() as u64,
            rate: cfg.syn_flood_rate,
            half_open: cfg.syn_flood_half_open,
            max_tracked: cfg.max_tracked,
            dests: HashMap::new(),
            flows: HashMap::new(),
            last_alert: HashMap::new(),
        }
    }

    pub fn tracked_flows(&self) -> usize {
        self.flows.len()
    }

    pub fn observe(&mut self, f: &Flow, node: &str, out: &mut Vec<Alert>) {
        if f.l4.protocol != L4Protocol::Tcp {
            return;
        }
        let out_flags = f.l4.tcp_flags_out.unwrap_or_default();
        let now = f.time.as_nanos();
        if f.event != FlowEvent::Start {
            // A later record of a tracked attempt: the initiator's ACK completes the handshake.
            if out_flags.contains(TcpFlags::ACK) {
                if let Some(k) = self.flows.get(&f.flow_id) {
                    if let Some(d) = self.dests.get_mut(k) {
                        d.half_open.remove(&f.flow_id);
                    }
                }
            }
            return;
        }
        if out_flags.0 & (TcpFlags::SYN | TcpFlags::ACK) != TcpFlags::SYN {
            return;
        }
        let cutoff = now.saturating_sub(self.window_ns);
        let key = (f.destination.ip, f.destination.port);
        if self.flows.len() >= self.max_tracked {
            let flows = &mut self.flows;
            for d in self.dests.values_mut() {
                d.prune(cutoff, flows);
            }
            self.dests.retain(|_, d| !d.syns.is_empty());
            if self.flows.len() >= self.max_tracked {
                return; // memory bound reached within one window: stop tracking new attempts
            }
        }
        let d = self.dests.entry(key).or_default();
        d.prune(cutoff, &mut self.flows);
        let src = f.source.ip;
        d.syns.push_back((now, f.flow_id.clone(), src));
        d.half_open.insert(f.flow_id.clone());
        *d.by_source.entry(src).or_default() += 1;
        d.endpoint = Some(f.destination.clone());
        d.source_endpoints.entry(src).or_insert_with(|| Endpoint {
            port: 0,
            ..f.source.clone()
        });
        self.flows.insert(f.flow_id.clone(), key);

        let window = self.window_ns as f64 / 1e9;
        let syns = d.syns.len();
        let rate = syns as f64 / window;
        let half_open = d.half_open.len();
        if rate < self.rate || half_open < self.half_open {
            return;
        }
        if self
            .last_alert
            .get(&key)
            .is_some_and(|t| now.saturating_sub(*t) < self.cooldown_ns)
        {
            return;
        }
        self.last_alert.insert(key, now);
        let (top, top_n) = d
            .by_source
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(ip, n)| (*ip, *n))
            .unwrap_or((src, 0));
        let dst_ep = d.endpoint.clone();
        let top_ep = d.source_endpoints.get(&top).cloned();
        let dst_name = dst_ep
            .as_ref()
            .and_then(Endpoint::pod_name)
            .map(|p| format!("{p} ({}:{})", key.0, key.1))
            .unwrap_or_else(|| format!("{}:{}", key.0, key.1));
        let mut a = Alert {
            time: f.time,
            kind: kind::SYN_FLOOD.into(),
            severity: Severity::High,
            summary: format!(
                "SYN flood at {dst_name}: {rate:.0} SYN/s, {half_open} half-open in {window}s, {} sources",
                d.by_source.len()
            ),
            source: top_ep,
            destination: dst_ep,
            evidence: Default::default(),
            details: Default::default(),
            window_secs: Some(window),
            action: None,
            node: node.into(),
        };
        a.evidence.insert("syn_per_sec".into(), rate);
        a.evidence.insert("syns".into(), syns as f64);
        a.evidence.insert("half_open".into(), half_open as f64);
        a.evidence
            .insert("sources".into(), d.by_source.len() as f64);
        a.evidence.insert("top_source_syns".into(), top_n as f64);
        a.evidence.insert("rate_threshold".into(), self.rate);
        a.evidence
            .insert("half_open_threshold".into(), self.half_open as f64);
        if top_n as usize * 2 >= syns {
            a.details.insert("block".into(), top.to_string());
        }
        out.push(a);
    }
}
