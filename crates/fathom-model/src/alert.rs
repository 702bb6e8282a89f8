//! Something a detector (or the shield's audit trail) wants a human to see: a port scan, a SYN
//! flood, a signature hit, an anomaly, or a change to the blocklist.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::flow::Endpoint;
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        })
    }
}

/// Kinds used by Fathom itself (free text, so rules can name their own).
pub mod kind {
    pub const PORT_SCAN: &str = "port_scan";
    pub const SYN_FLOOD: &str = "syn_flood";
    pub const SIGNATURE: &str = "signature";
    pub const ANOMALY: &str = "anomaly";
    /// Audit: a CIDR was added to the shield's blocklist.
    pub const SHIELD_BLOCK: &str = "shield_block";
    /// Audit: a CIDR was removed from the blocklist by an operator.
    pub const SHIELD_UNBLOCK: &str = "shield_unblock";
    /// Audit: a timed block ran out and was reaped.
    pub const SHIELD_EXPIRED: &str = "shield_expired";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub time: Timestamp,
    pub kind: String,
    pub severity: Severity,
    /// One line for humans.
    pub summary: String,
    pub source: Option<Endpoint>,
    pub destination: Option<Endpoint>,
    /// The numbers behind the verdict (distinct ports, SYNs per second, threshold, …).
    #[serde(default)]
    pub evidence: BTreeMap<String, f64>,
    /// Text facts (CIDR, reason, rule id, scan type, …).
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    /// The observation window the evidence covers, in seconds.
    pub window_secs: Option<f64>,
    /// What was done about it (e.g. "blocked 10.0.0.5/32 for 600s"), if anything.
    pub action: Option<String>,
    pub node: String,
}
