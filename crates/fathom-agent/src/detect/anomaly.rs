//! Anomalies per workload, against baselines learnt from the node's own traffic.
//!
//! - **Pair baselines**: for each (source workload, destination workload or "external") pair,
//!   connections started and bytes moved per `bucket` (default 1 min). Each closed bucket
//!   updates an EWMA of the mean and of the variance (weight `alpha`); after `learning_buckets`
//!   buckets, a bucket whose value is above `mean + k·max(stddev, floor)` alerts (increases
//!   only: a quiet minute is not an attack). Pairs absent from a bucket count as 0 in it.
//! - **New destinations**: after a workload has been seen for `learning`, a destination (a
//!   workload, or an address outside every known workload = external) it never talked to
//!   alerts once.
//! - **New listening ports**: after the learning period, a port of a workload that answers a
//!   connection for the first time (SYN+ACK seen, or UDP reply) alerts once.
//!
//! Time is the records' own (`Flow::time`), so tests drive it with a fake clock.

use std::collections::{BTreeMap, HashMap, HashSet};

use fathom_model::alert::kind;
use fathom_model::{Alert, Endpoint, Flow, FlowEvent, L4Protocol, Severity, TcpFlags};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalyConfig {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub bucket: std::time::Duration,
    /// EWMA weight of the newest bucket.
    pub alpha: f64,
    /// Buckets observed before a pair's baseline is trusted.
    pub learning_buckets: u32,
    /// How far above the mean, in standard deviations, is anomalous.
    pub k: f64,
    /// Standard-deviation floors (a perfectly steady baseline would make any +1 anomalous).
    pub min_stddev_connections: f64,
    pub min_stddev_bytes: f64,
    /// How long a workload is watched before new destinations/ports alert.
    #[serde(with = "humantime_serde")]
    pub learning: std::time::Duration,
    pub max_pairs: usize,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            enabled: true,
            bucket: std::time::Duration::from_secs(60),
            alpha: 0.1,
            learning_buckets: 60,
            k: 4.0,
            min_stddev_connections: 5.0,
            min_stddev_bytes: 100_000.0,
            learning: std::time::Duration::from_secs(3600),
            max_pairs: 50_000,
        }
    }
}

impl AnomalyConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.bucket.is_zero() || self.learning_buckets == 0 {
            return Err("detect.anomaly: bucket and learning_buckets must be above 0".into());
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err("detect.anomaly.alpha must be in (0, 1]".into());
        }
        if !self.k.is_finite() || self.k <= 0.0 {
            return Err("detect.anomaly.k must be above 0".into());
        }
        Ok(())
    }
}

/// EWMA mean and variance (West's incremental form).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ewma {
    pub mean: f64,
    pub var: f64,
    pub n: u32,
}

impl Ewma {
    pub fn update(&mut self, x: f64, alpha: f64) {
        if self.n == 0 {
            self.mean = x;
            self.var = 0.0;
        } else {
            let d = x - self.mean;
            self.mean += alpha * d;
            self.var = (1.0 - alpha) * (self.var + alpha * d * d);
        }
        self.n = self.n.saturating_add(1);
    }
    pub fn stddev(&self) -> f64 {
        self.var.sqrt()
    }
}

#[derive(Default)]
struct Pair {
    conns: Ewma,
    bytes: Ewma,
    cur_conns: f64,
    cur_bytes: f64,
    src: Option<Endpoint>,
    dst: Option<Endpoint>,
}

/// `namespace/app` (the `app` label, else the pod name); None for addresses that are no pod.
pub fn workload(ep: &Endpoint) -> Option<String> {
    let pod = ep.pod.as_ref()?;
    let name = ep.labels.get("app").unwrap_or(pod);
    Some(match &ep.namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.clone(),
    })
}

pub struct AnomalyDetector {
    cfg: AnomalyConfig,
    bucket_ns: u64,
    bucket_end: Option<u64>,
    pairs: BTreeMap<(String, String), Pair>,
    first_seen: HashMap<String, u64>,
    destinations: HashMap<String, HashSet<String>>,
    ports: HashMap<String, HashSet<(u16, u8)>>,
}

impl AnomalyDetector {
    pub fn new(cfg: AnomalyConfig) -> Self {
        AnomalyDetector {
            bucket_ns: cfg.bucket.as_nanos() as u64,
            cfg,
            bucket_end: None,
            pairs: BTreeMap::new(),
            first_seen: HashMap::new(),
            destinations: HashMap::new(),
            ports: HashMap::new(),
        }
    }

    fn learned(&self, w: &str, now: u64) -> bool {
        self.first_seen
            .get(w)
            .is_some_and(|t| now.saturating_sub(*t) >= self.cfg.learning.as_nanos() as u64)
    }

    /// Close every bucket that ended at or before `now`.
    fn roll(&mut self, now: u64, node: &str, out: &mut Vec<Alert>) {
        let end = *self.bucket_end.get_or_insert(now + self.bucket_ns);
        if now < end {
            return;
        }
        let mut end = end;
        while now >= end {
            for ((s, d), p) in self.pairs.iter_mut() {
                let checks = [
                    (
                        "connections",
                        p.cur_conns,
                        &mut p.conns,
                        self.cfg.min_stddev_connections,
                    ),
                    (
                        "bytes",
                        p.cur_bytes,
                        &mut p.bytes,
                        self.cfg.min_stddev_bytes,
                    ),
                ];
                for (what, x, base, floor) in checks {
                    if base.n >= self.cfg.learning_buckets {
                        let sd = base.stddev().max(floor);
                        let limit = base.mean + self.cfg.k * sd;
                        if x > limit {
                            let mut a = Alert {
                                time: fathom_model::Timestamp::from_nanos(end),
                                kind: kind::ANOMALY.into(),
                                severity: Severity::Medium,
                                summary: format!(
                                    "{s} → {d}: {x:.0} {what} in {}s, baseline {:.1} ± {:.1}",
                                    self.bucket_ns / 1_000_000_000,
                                    base.mean,
                                    base.stddev()
                                ),
                                source: p.src.clone(),
                                destination: p.dst.clone(),
                                evidence: Default::default(),
                                details: Default::default(),
                                window_secs: Some(self.bucket_ns as f64 / 1e9),
                                action: None,
                                node: node.into(),
                            };
                            a.evidence.insert("value".into(), x);
                            a.evidence.insert("mean".into(), base.mean);
                            a.evidence.insert("stddev".into(), base.stddev());
                            a.evidence.insert("limit".into(), limit);
                            a.details.insert("anomaly".into(), format!("{what}_rate"));
                            a.details.insert("pair".into(), format!("{s} -> {d}"));
                            out.push(a);
                        }
                    }
                    base.update(x, self.cfg.alpha);
                }
                p.cur_conns = 0.0;
                p.cur_bytes = 0.0;
            }
            end += self.bucket_ns;
            // A silence of more than learning_buckets buckets is skipped after one zero bucket
            // (bounded work per record); shorter gaps feed their zero buckets.
            if now >= end + self.bucket_ns * u64::from(self.cfg.learning_buckets) {
                end = now - (now - end) % self.bucket_ns;
            }
        }
        self.bucket_end = Some(end);
    }

    fn new_thing(
        &self,
        node: &str,
        f: &Flow,
        what: &str,
        summary: String,
        detail: (&str, String),
    ) -> Alert {
        let mut a = Alert {
            time: f.time,
            kind: kind::ANOMALY.into(),
            severity: Severity::Low,
            summary,
            source: Some(f.source.clone()),
            destination: Some(f.destination.clone()),
            evidence: Default::default(),
            details: Default::default(),
            window_secs: None,
            action: None,
            node: node.into(),
        };
        a.details.insert("anomaly".into(), what.into());
        a.details.insert(detail.0.into(), detail.1);
        a
    }

    pub fn observe(&mut self, f: &Flow, node: &str, out: &mut Vec<Alert>) {
        let now = f.time.as_nanos();
        self.roll(now, node, out);
        let src_w = workload(&f.source);
        let dst_w = workload(&f.destination);
        for w in [&src_w, &dst_w].into_iter().flatten() {
            self.first_seen.entry(w.clone()).or_insert(now);
        }
        let Some(sw) = src_w.clone() else {
            return; // traffic from outside: the pair view is per local workload
        };
        let dst_name = dst_w
            .clone()
            .unwrap_or_else(|| format!("external:{}", f.destination.ip));
        let pair_key = (
            sw.clone(),
            dst_w.clone().unwrap_or_else(|| "external".into()),
        );
        if self.pairs.len() < self.cfg.max_pairs || self.pairs.contains_key(&pair_key) {
            let p = self.pairs.entry(pair_key).or_default();
            if f.event == FlowEvent::Start {
                p.cur_conns += 1.0;
            }
            if f.event == FlowEvent::End {
                let t = &f.traffic;
                p.cur_bytes += (t.bytes_out + t.bytes_in) as f64;
            }
            p.src.get_or_insert_with(|| Endpoint {
                port: 0,
                ..f.source.clone()
            });
            p.dst.get_or_insert_with(|| f.destination.clone());
        }

        // New destination for this workload.
        if f.event == FlowEvent::Start {
            let learned = self.learned(&sw, now);
            let known = self.destinations.entry(sw.clone()).or_default();
            if known.len() < self.cfg.max_pairs && known.insert(dst_name.clone()) && learned {
                let what = if dst_w.is_none() {
                    "new_external_destination"
                } else {
                    "new_destination"
                };
                out.push(self.new_thing(
                    node,
                    f,
                    what,
                    format!("{sw} talks to {dst_name} for the first time"),
                    ("destination", dst_name.clone()),
                ));
            }
        }

        // A port of a workload answering for the first time.
        if let Some(dw) = dst_w {
            let answered = match f.l4.protocol {
                L4Protocol::Tcp => {
                    f.l4.tcp_flags_in
                        .is_some_and(|fl| fl.contains(TcpFlags::SYN) && fl.contains(TcpFlags::ACK))
                }
                L4Protocol::Udp => f.traffic.packets_in > 0,
                _ => false,
            };
            if answered {
                let learned = self.learned(&dw, now);
                let port = (f.destination.port, f.l4.protocol.ip_proto());
                let known = self.ports.entry(dw.clone()).or_default();
                if known.len() < 65_536 && known.insert(port) && learned {
                    out.push(self.new_thing(
                        node,
                        f,
                        "new_listening_port",
                        format!(
                            "{dw} answers on {}/{} for the first time",
                            port.0,
                            f.l4.protocol.name()
                        ),
                        ("port", format!("{}/{}", port.0, f.l4.protocol.name())),
                    ));
                }
            }
        }
    }
}
