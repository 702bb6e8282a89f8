//! A network policy verdict: what the kernel did with a new connection at one endpoint, and
//! which policies and rules decided it.

use serde::{Deserialize, Serialize};

use crate::flow::{Endpoint, InterfaceRef, L4Protocol};
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PolicyVerdict {
    Forwarded,
    Dropped,
    /// Passed, but an audit-mode policy would have dropped it.
    Audit,
}

impl PolicyVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forwarded => "FORWARDED",
            Self::Dropped => "DROPPED",
            Self::Audit => "AUDIT",
        }
    }
}

impl std::str::FromStr for PolicyVerdict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "FORWARDED" | "ALLOWED" => Ok(Self::Forwarded),
            "DROPPED" | "DENIED" => Ok(Self::Dropped),
            "AUDIT" => Ok(Self::Audit),
            _ => Err(format!(
                "unknown verdict {s:?}: expected DROPPED, AUDIT or FORWARDED"
            )),
        }
    }
}

/// A policy (and rule, when one rule decided) that took part in a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRuleRef {
    pub namespace: String,
    pub name: String,
    /// "NetworkPolicy" or "FathomNetworkPolicy".
    pub kind: String,
    /// "enforce" or "audit".
    pub mode: String,
    /// "ingress[0]", "egress[2]"; absent when the policy decided as a whole (default deny).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_label: Option<String>,
}

impl PolicyRuleRef {
    /// `namespace/name` or `namespace/name:ingress[0]`.
    pub fn display_name(&self) -> String {
        match &self.rule {
            Some(r) => format!("{}/{}:{r}", self.namespace, self.name),
            None => format!("{}/{}", self.namespace, self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVerdictRecord {
    pub time: Timestamp,
    pub verdict: PolicyVerdict,
    /// "ingress" or "egress", from the point of view of `endpoint`.
    pub direction: String,
    /// The pod whose policy decided (namespace/name).
    pub endpoint: String,
    pub source: Endpoint,
    pub destination: Endpoint,
    pub protocol: L4Protocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    /// Why, in words: "allowed by", "default deny", "audit: would be denied by", …
    pub reason: String,
    pub policies: Vec<PolicyRuleRef>,
    /// Identity of the peer as the kernel resolved it.
    pub peer_identity: u32,
    pub interface: Option<InterfaceRef>,
    pub length: u32,
    pub node: String,
}
