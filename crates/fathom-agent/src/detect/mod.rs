//! Detectors over the pipeline's records: port scans and SYN floods (from flow records), with
//! an optional automatic response (block the source at the XDP shield for a while). Each
//! detector is pure state over record times, so tests drive it with synthetic flows and their
//! own clock; the pipeline feeds every record it emits and emits the alerts that come back.

pub mod anomaly;
pub mod portscan;
pub mod shieldflood;
pub mod signatures;
pub mod synflood;

use std::net::IpAddr;
use std::time::Duration;

use fathom_model::{Alert, Record};
use serde::Deserialize;

/// `detect:` in the agent config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    pub enabled: bool,
    /// Sliding window the thresholds count over.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Distinct destination ports one source touches on one host within the window.
    pub scan_ports: usize,
    /// Distinct hosts one source touches on one port within the window.
    pub scan_hosts: usize,
    /// New TCP connection attempts (SYNs) per second to one destination, averaged over the
    /// window, AND this many of them still half-open: a flood. Both must hold, so a busy but
    /// healthy service (handshakes complete) never trips it.
    pub syn_flood_rate: f64,
    pub syn_flood_half_open: usize,
    /// After an alert, the same (kind, key) stays quiet this long.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Automatic response: block a scanning/flooding source at the shield for this long.
    #[serde(with = "humantime_serde::option")]
    pub auto_block: Option<Duration>,
    /// Upper bound on tracked sources/destinations/flows per detector (memory bound).
    pub max_tracked: usize,
    /// Signature rule file (YAML, see docs/shield.md); rejected as a whole when any rule is bad.
    pub signatures: Option<std::path::PathBuf>,
    /// Baselines per workload pair, new destinations, new listening ports.
    pub anomaly: anomaly::AnomalyConfig,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            enabled: true,
            window: Duration::from_secs(10),
            scan_ports: 20,
            scan_hosts: 20,
            syn_flood_rate: 100.0,
            syn_flood_half_open: 200,
            cooldown: Duration::from_secs(60),
            auto_block: None,
            max_tracked: 100_000,
            signatures: None,
            anomaly: anomaly::AnomalyConfig::default(),
        }
    }
}

impl DetectConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.window.is_zero() {
            return Err("detect.window must be above 0".into());
        }
        if self.scan_ports < 2 || self.scan_hosts < 2 {
            return Err("detect.scan_ports and detect.scan_hosts must be at least 2".into());
        }
        if !self.syn_flood_rate.is_finite()
            || self.syn_flood_rate <= 0.0
            || self.syn_flood_half_open == 0
        {
            return Err(
                "detect.syn_flood_rate and detect.syn_flood_half_open must be above 0".into(),
            );
        }
        if self.max_tracked < 100 {
            return Err("detect.max_tracked must be at least 100".into());
        }
        self.anomaly.validate()?;
        if let Some(p) = &self.signatures {
            signatures::load_rules(p).map_err(|e| format!("detect.signatures: {e}"))?;
        }
        Ok(())
    }
}

/// Called with (source, seconds, reason) for the automatic response; returns what was done.
pub type Responder = Box<dyn Fn(IpAddr, u64, &str) -> Result<String, String> + Send>;

pub struct Detectors {
    cfg: DetectConfig,
    scans: portscan::PortScanDetector,
    floods: synflood::SynFloodDetector,
    signatures: signatures::SignatureEngine,
    anomalies: Option<anomaly::AnomalyDetector>,
    responder: Option<Responder>,
    node: String,
}

impl Detectors {
    pub fn new(cfg: DetectConfig, node: String, responder: Option<Responder>) -> Self {
        Self::with_rules(cfg, node, responder, Vec::new())
    }

    /// Load the configured signature file (all or nothing) and build the detectors.
    pub fn from_config(
        cfg: DetectConfig,
        node: String,
        responder: Option<Responder>,
    ) -> Result<Self, signatures::RuleError> {
        let rules = match &cfg.signatures {
            Some(p) => signatures::load_rules(p)?,
            None => Vec::new(),
        };
        Ok(Self::with_rules(cfg, node, responder, rules))
    }

    pub fn with_rules(
        cfg: DetectConfig,
        node: String,
        responder: Option<Responder>,
        rules: Vec<signatures::Rule>,
    ) -> Self {
        Detectors {
            scans: portscan::PortScanDetector::new(&cfg),
            floods: synflood::SynFloodDetector::new(&cfg),
            signatures: signatures::SignatureEngine::new(rules, cfg.max_tracked),
            anomalies: cfg
                .anomaly
                .enabled
                .then(|| anomaly::AnomalyDetector::new(cfg.anomaly.clone())),
            cfg,
            responder,
            node,
        }
    }

    /// Feed one record; returns the alerts it completes (already carrying any response).
    pub fn observe(&mut self, r: &Record) -> Vec<Alert> {
        let mut out = Vec::new();
        self.signatures.observe(r, &self.node, &mut out);
        if let Record::Flow(f) = r {
            self.scans.observe(f, &self.node, &mut out);
            self.floods.observe(f, &self.node, &mut out);
            if let Some(an) = &mut self.anomalies {
                an.observe(f, &self.node, &mut out);
            }
        }
        if let (Some(d), Some(respond)) = (self.cfg.auto_block, &self.responder) {
            for a in out.iter_mut() {
                // Floods are blocked by source only when one source dominates: the detector
                // sets `details.block` to the address it blames.
                let Some(ip) = a
                    .details
                    .get("block")
                    .and_then(|s| s.parse::<IpAddr>().ok())
                else {
                    continue;
                };
                let secs = d.as_secs().max(1);
                a.action = Some(match respond(ip, secs, &a.summary) {
                    Ok(done) => done,
                    Err(e) => format!("automatic block of {ip} failed: {e}"),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod signature_tests;

#[cfg(test)]
mod anomaly_tests;
