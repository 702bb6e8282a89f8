//! SYN floods the flow sensor cannot see: when the shield enforces a SYN limit, the dropped
//! SYNs never reach TC. The shield's exact `syn_rate` drop counter, spread over its
//! rate-limited drop events (the sample that names sources and destinations), is summed per
//! destination over the detector's window; a rate at or above `syn_flood_rate` raises the same
//! `syn_flood` alert, marked `seen_by: shield`. With several floods at once the split between
//! destinations follows the sample, so it is approximate; the totals are exact.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use fathom_model::alert::kind;
use fathom_model::{Alert, Endpoint, Severity, Timestamp};

/// (time ns, weight, source) of the drops a destination received in the window.
type Drops = VecDeque<(u64, u64, IpAddr)>;

pub struct ShieldFloodWatch {
    window_ns: u64,
    cooldown_ns: u64,
    rate: f64,
    dests: HashMap<(IpAddr, u16), Drops>,
    last_alert: HashMap<(IpAddr, u16), u64>,
}

/// One shield drop event as this watcher needs it.
pub struct SynDrop {
    pub ts_ns: u64,
    pub weight: u64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub dport: u16,
}

impl ShieldFloodWatch {
    pub fn new(cfg: &super::DetectConfig) -> Self {
        ShieldFloodWatch {
            window_ns: cfg.window.as_nanos() as u64,
            cooldown_ns: cfg.cooldown.as_nanos() as u64,
            rate: cfg.syn_flood_rate,
            dests: HashMap::new(),
            last_alert: HashMap::new(),
        }
    }

    /// `endpoint` names addresses (pods) for the alert.
    pub fn observe(
        &mut self,
        d: &SynDrop,
        node: &str,
        endpoint: &dyn Fn(IpAddr, u16) -> Endpoint,
    ) -> Option<Alert> {
        let key = (d.dst, d.dport);
        if !self.dests.contains_key(&key) && self.dests.len() >= 10_000 {
            let (now, w) = (d.ts_ns, self.window_ns);
            self.dests
                .retain(|_, q| q.back().is_some_and(|(t, _, _)| now.saturating_sub(*t) < w));
        }
        let q = self.dests.entry(key).or_default();
        q.push_back((d.ts_ns, d.weight, d.src));
        while q
            .front()
            .is_some_and(|(t, _, _)| d.ts_ns.saturating_sub(*t) >= self.window_ns)
        {
            q.pop_front();
        }
        let total: u64 = q.iter().map(|(_, w, _)| w).sum();
        let window = self.window_ns as f64 / 1e9;
        let rate = total as f64 / window;
        if rate < self.rate {
            return None;
        }
        if self
            .last_alert
            .get(&key)
            .is_some_and(|t| d.ts_ns.saturating_sub(*t) < self.cooldown_ns)
        {
            return None;
        }
        self.last_alert.insert(key, d.ts_ns);
        let mut by_src: HashMap<IpAddr, u64> = HashMap::new();
        for (_, w, s) in q.iter() {
            *by_src.entry(*s).or_default() += w;
        }
        let (top, top_n) = by_src
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(s, n)| (*s, *n))
            .unwrap_or((d.src, 0));
        let dst = endpoint(d.dst, d.dport);
        let src = Endpoint {
            port: 0,
            ..endpoint(top, 0)
        };
        let dst_name = dst
            .pod_name()
            .map(|p| format!("{p} ({}:{})", d.dst, d.dport))
            .unwrap_or_else(|| format!("{}:{}", d.dst, d.dport));
        let mut a = Alert {
            time: Timestamp::now(),
            kind: kind::SYN_FLOOD.into(),
            severity: Severity::High,
            summary: format!(
                "SYN flood at {dst_name}: {rate:.0} SYN/s dropped by the shield in {window}s, {} sources",
                by_src.len()
            ),
            source: Some(src),
            destination: Some(dst),
            evidence: Default::default(),
            details: Default::default(),
            window_secs: Some(window),
            action: None,
            node: node.into(),
        };
        a.evidence.insert("syn_per_sec".into(), rate);
        a.evidence.insert("dropped_syns".into(), total as f64);
        a.evidence.insert("sources".into(), by_src.len() as f64);
        a.evidence.insert("top_source_syns".into(), top_n as f64);
        a.evidence.insert("rate_threshold".into(), self.rate);
        a.details.insert("seen_by".into(), "shield".into());
        if top_n * 2 >= total {
            a.details.insert("block".into(), top.to_string());
        }
        Some(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn weighted_drops_over_the_window_make_a_flood() {
        let cfg = super::super::DetectConfig {
            window: Duration::from_secs(10),
            syn_flood_rate: 100.0,
            ..Default::default()
        };
        let mut w = ShieldFloodWatch::new(&cfg);
        let ep = |ip: IpAddr, port: u16| Endpoint::new(ip, port);
        let drop = |t: u64, weight: u64| SynDrop {
            ts_ns: t,
            weight,
            src: "10.0.0.66".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            dport: 80,
        };
        // 999 drops in the window: 99.9/s, below 100/s.
        assert!(w.observe(&drop(1, 500), "n", &ep).is_none());
        assert!(w.observe(&drop(2, 499), "n", &ep).is_none());
        let a = w.observe(&drop(3, 1), "n", &ep).expect("1000 in 10 s");
        assert_eq!(a.kind, "syn_flood");
        assert_eq!(a.evidence["dropped_syns"], 1000.0);
        assert_eq!(a.evidence["syn_per_sec"], 100.0);
        assert_eq!(a.details["seen_by"], "shield");
        assert_eq!(a.details["block"], "10.0.0.66");
        // Cooldown.
        assert!(w.observe(&drop(4, 5000), "n", &ep).is_none());
        // Old drops leave the window.
        let mut w = ShieldFloodWatch::new(&cfg);
        assert!(w.observe(&drop(1, 900), "n", &ep).is_none());
        assert!(w.observe(&drop(10_000_000_001, 200), "n", &ep).is_none());
    }
}
