//! Port scans: one source opening conversations to many distinct ports of one host (vertical)
//! or to one port on many hosts (horizontal) within a sliding window. Probes are flow starts;
//! the scan type comes from the first packet's TCP flags (SYN, FIN, NULL, XMAS) or UDP.
//! Counting is incremental (per-source maps of counts in the window), so a flood of probes
//! costs O(1) per record.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

use fathom_model::alert::kind;
use fathom_model::{Alert, Endpoint, Flow, FlowEvent, L4Protocol, Severity, TcpFlags, Timestamp};

use super::DetectConfig;

/// How a probe looked on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScanClass {
    Syn,
    Fin,
    Null,
    Xmas,
    Udp,
}

impl ScanClass {
    pub fn name(self) -> &'static str {
        match self {
            ScanClass::Syn => "syn",
            ScanClass::Fin => "fin",
            ScanClass::Null => "null",
            ScanClass::Xmas => "xmas",
            ScanClass::Udp => "udp",
        }
    }

    /// The class of a flow's first packet; None for what is not a probe (mid-stream pickups
    /// with ACK, ICMP, …).
    pub fn of(f: &Flow) -> Option<ScanClass> {
        match f.l4.protocol {
            L4Protocol::Udp => Some(ScanClass::Udp),
            L4Protocol::Tcp => {
                let fl = f.l4.tcp_flags_out.unwrap_or_default().0;
                let fpu = TcpFlags::FIN | TcpFlags::PSH | TcpFlags::URG;
                if fl & fpu == fpu {
                    Some(ScanClass::Xmas)
                } else if fl & 0x3f == 0 {
                    Some(ScanClass::Null)
                } else if fl & (TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::SYN {
                    Some(ScanClass::Syn)
                } else if fl & (TcpFlags::FIN | TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::FIN {
                    Some(ScanClass::Fin)
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}

type PortKey = (u16, u8); // (port, ip proto)

struct Probe {
    t: u64,
    dst: IpAddr,
    port: PortKey,
    class: ScanClass,
}

#[derive(Default)]
struct SourceState {
    probes: VecDeque<Probe>,
    /// Counted per scan type: a SYN scan and a UDP scan are two scans, each with its count.
    ports_by_dst: HashMap<(IpAddr, ScanClass), HashMap<PortKey, u32>>,
    hosts_by_port: HashMap<(PortKey, ScanClass), HashMap<IpAddr, u32>>,
    classes: BTreeMap<ScanClass, u32>,
    endpoint: Option<Endpoint>,
    dst_endpoints: HashMap<IpAddr, Endpoint>,
}

fn dec<K: std::hash::Hash + Eq>(m: &mut HashMap<K, u32>, k: &K) {
    if let Some(c) = m.get_mut(k) {
        *c -= 1;
        if *c == 0 {
            m.remove(k);
        }
    }
}

impl SourceState {
    fn prune(&mut self, cutoff: u64) {
        while self.probes.front().is_some_and(|p| p.t < cutoff) {
            let Some(p) = self.probes.pop_front() else {
                break;
            };
            if let Some(m) = self.ports_by_dst.get_mut(&(p.dst, p.class)) {
                dec(m, &p.port);
                if m.is_empty() {
                    self.ports_by_dst.remove(&(p.dst, p.class));
                }
            }
            if let Some(m) = self.hosts_by_port.get_mut(&(p.port, p.class)) {
                dec(m, &p.dst);
                if m.is_empty() {
                    self.hosts_by_port.remove(&(p.port, p.class));
                }
            }
            if let Some(c) = self.classes.get_mut(&p.class) {
                *c -= 1;
                if *c == 0 {
                    self.classes.remove(&p.class);
                }
            }
        }
    }
}

pub struct PortScanDetector {
    window_ns: u64,
    cooldown_ns: u64,
    scan_ports: usize,
    scan_hosts: usize,
    max_tracked: usize,
    sources: HashMap<IpAddr, SourceState>,
    /// (kind, source, key) → time of the last alert.
    last_alert: HashMap<(&'static str, IpAddr, String), u64>,
}

impl PortScanDetector {
    pub fn new(cfg: &DetectConfig) -> Self {
        PortScanDetector {
            window_ns: cfg.window.as_nanos() as u64,
            cooldown_ns: cfg.cooldown.as_nanos() as u64,
            scan_ports: cfg.scan_ports,
            scan_hosts: cfg.scan_hosts,
            max_tracked: cfg.max_tracked,
            sources: HashMap::new(),
            last_alert: HashMap::new(),
        }
    }

    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    fn quiet(&mut self, key: (&'static str, IpAddr, String), now: u64) -> bool {
        match self.last_alert.get(&key) {
            Some(t) if now.saturating_sub(*t) < self.cooldown_ns => true,
            _ => {
                self.last_alert.insert(key, now);
                false
            }
        }
    }

    pub fn observe(&mut self, f: &Flow, node: &str, out: &mut Vec<Alert>) {
        if f.event != FlowEvent::Start {
            return;
        }
        let Some(class) = ScanClass::of(f) else {
            return;
        };
        let now = f.time.as_nanos();
        let cutoff = now.saturating_sub(self.window_ns);
        let src = f.source.ip;
        if !self.sources.contains_key(&src) && self.sources.len() >= self.max_tracked {
            // Memory bound: forget sources with nothing left in the window; if all are busy,
            // this new source is not tracked (counted nowhere, never a panic).
            self.sources.retain(|_, s| {
                s.prune(cutoff);
                !s.probes.is_empty()
            });
            if self.sources.len() >= self.max_tracked {
                return;
            }
        }
        if self.last_alert.len() > self.max_tracked {
            let cd = self.cooldown_ns;
            self.last_alert.retain(|_, t| now.saturating_sub(*t) < cd);
        }
        let st = self.sources.entry(src).or_default();
        st.prune(cutoff);
        let dst = f.destination.ip;
        let port = (f.destination.port, f.l4.protocol.ip_proto());
        st.probes.push_back(Probe {
            t: now,
            dst,
            port,
            class,
        });
        *st.ports_by_dst
            .entry((dst, class))
            .or_default()
            .entry(port)
            .or_default() += 1;
        *st.hosts_by_port
            .entry((port, class))
            .or_default()
            .entry(dst)
            .or_default() += 1;
        *st.classes.entry(class).or_default() += 1;
        st.endpoint = Some(Endpoint {
            port: 0,
            ..f.source.clone()
        });
        if st.dst_endpoints.len() >= 4096 {
            st.dst_endpoints.clear(); // display-only cache: bounded, refilled as probes come
        }
        st.dst_endpoints.insert(
            dst,
            Endpoint {
                port: 0,
                ..f.destination.clone()
            },
        );

        let ports = st.ports_by_dst.get(&(dst, class)).map_or(0, HashMap::len);
        let hosts = st.hosts_by_port.get(&(port, class)).map_or(0, HashMap::len);
        let probes = st.classes.get(&class).copied().unwrap_or(0);
        let scan_type = class;
        let src_ep = st.endpoint.clone();
        let dst_ep = st.dst_endpoints.get(&dst).cloned();
        let window = self.window_ns as f64 / 1e9;

        let who = |ep: &Option<Endpoint>, ip: IpAddr| {
            ep.as_ref()
                .and_then(Endpoint::pod_name)
                .map(|p| format!("{p} ({ip})"))
                .unwrap_or_else(|| ip.to_string())
        };
        // Cooldown per scan type: a UDP scan right after a SYN scan is news.
        if ports >= self.scan_ports
            && !self.quiet(("vertical", src, format!("{dst} {}", class.name())), now)
        {
            let mut a = alert(node, f.time, src_ep.clone(), dst_ep.clone(), window);
            a.summary = format!(
                "{} port scan of {}: {ports} ports in {window}s",
                scan_type.name().to_uppercase(),
                who(&dst_ep, dst),
            );
            a.summary = format!("{} {}", who(&src_ep, src), a.summary);
            a.evidence.insert("distinct_ports".into(), ports as f64);
            a.evidence
                .insert("threshold".into(), self.scan_ports as f64);
            a.evidence.insert("probes".into(), probes as f64);
            a.details.insert("direction".into(), "vertical".into());
            a.details
                .insert("scan_type".into(), scan_type.name().into());
            a.details.insert("block".into(), src.to_string());
            out.push(a);
        }
        if hosts >= self.scan_hosts
            && !self.quiet(
                (
                    "horizontal",
                    src,
                    format!("{}/{} {}", port.0, port.1, class.name()),
                ),
                now,
            )
        {
            let mut a = alert(node, f.time, src_ep.clone(), None, window);
            a.summary = format!(
                "{} {} sweep of port {}/{}: {hosts} hosts in {window}s",
                who(&src_ep, src),
                scan_type.name().to_uppercase(),
                port.0,
                f.l4.protocol.name()
            );
            a.evidence.insert("distinct_hosts".into(), hosts as f64);
            a.evidence
                .insert("threshold".into(), self.scan_hosts as f64);
            a.evidence.insert("probes".into(), probes as f64);
            a.evidence.insert("port".into(), port.0 as f64);
            a.details.insert("direction".into(), "horizontal".into());
            a.details
                .insert("scan_type".into(), scan_type.name().into());
            a.details.insert("block".into(), src.to_string());
            out.push(a);
        }
    }
}

fn alert(
    node: &str,
    time: Timestamp,
    source: Option<Endpoint>,
    destination: Option<Endpoint>,
    window: f64,
) -> Alert {
    Alert {
        time,
        kind: kind::PORT_SCAN.into(),
        severity: Severity::Medium,
        summary: String::new(),
        source,
        destination,
        evidence: Default::default(),
        details: Default::default(),
        window_secs: Some(window),
        action: None,
        node: node.into(),
    }
}
