//! The lab document: which namespaces and pods to create, with their labels and named ports.
//!
//! Parsing is strict (unknown fields are errors) and validation is all-or-nothing with messages that name the offending
//! field, e.g. `namespaces[1].pods[0].name: "A_b" is not a valid DNS-1123 label`, because a typo in a test's lab
//! should fail loudly rather than produce a lab that silently differs from what the test asserts against.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::names::{is_dns1123_label, is_iana_svc_name, is_label_key, is_label_value};

/// A lab holds at most this many pods (the per-lab /24 has room for 245; the rest is headroom).
pub const MAX_PODS: usize = 200;
/// Lab name used when neither the spec nor the caller gives one.
pub const DEFAULT_LAB_NAME: &str = "lab";
/// Label every lab namespace carries, as Kubernetes >= 1.21 does, so `namespaceSelector`s can match by name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Label set (sorted, so state files and output are stable).
pub type Labels = BTreeMap<String, String>;

/// A lab spec as written in YAML.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    /// Lab name (DNS-1123 label); `--name` / [`crate::UpOptions::name`] override it; default [`DEFAULT_LAB_NAME`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub namespaces: Vec<NamespaceSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceSpec {
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub pods: Vec<PodSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodSpec {
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub ports: Vec<PortSpec>,
}

/// A (named) container port, as in a Kubernetes pod spec; NetworkPolicies may refer to it by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(deserialize_with = "deserialize_port")]
    pub port: u16,
    #[serde(default)]
    pub protocol: Protocol,
}

/// L4 protocol of a container port (Kubernetes spelling).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// Read the port as a wide integer so that `70000` or `-1` get our message (with the YAML path serde_norway adds)
/// instead of a bare "expected u16".
fn deserialize_port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let v = i64::deserialize(d)?;
    match u16::try_from(v) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(serde::de::Error::custom(format!(
            "port {v} is out of range 1..65535"
        ))),
    }
}

/// Why a spec was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// YAML syntax, wrong types, unknown fields; serde_norway's message already names the path and line.
    #[error("invalid lab spec: {0}")]
    Yaml(#[from] serde_norway::Error),
    /// A semantic rule failed; `path` is the field, e.g. `namespaces[1].pods[0].name`.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("reading lab spec {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

const DNS1123_HELP: &str =
    "is not a valid DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)";

fn check_dns_label(path: String, value: &str) -> Result<(), SpecError> {
    if is_dns1123_label(value) {
        Ok(())
    } else {
        Err(invalid(path, format!("{value:?} {DNS1123_HELP}")))
    }
}

/// Validate a lab name (also used for `--name`).
pub fn validate_lab_name(name: &str) -> Result<(), SpecError> {
    check_dns_label("name".to_string(), name)
}

fn check_labels(path: String, labels: &Labels) -> Result<(), SpecError> {
    for (k, v) in labels {
        if !is_label_key(k) {
            return Err(invalid(
                path,
                format!("key {k:?} is not a valid label key ([prefix/]name; name at most 63 characters of [A-Za-z0-9_.-], starting and ending with an alphanumeric)"),
            ));
        }
        if !is_label_value(v) {
            return Err(invalid(
                path,
                format!("value {v:?} of {k:?} is not a valid label value (at most 63 characters of [A-Za-z0-9_.-], starting and ending with an alphanumeric)"),
            ));
        }
    }
    Ok(())
}

impl LabSpec {
    /// Parse and validate a YAML document.
    pub fn from_yaml(text: &str) -> Result<LabSpec, SpecError> {
        let spec: LabSpec = serde_norway::from_str(text)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Read, parse and validate a YAML file.
    pub fn from_file(path: &Path) -> Result<LabSpec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// The built-in demo lab ([`crate::DEMO_SPEC`]).
    pub fn demo() -> LabSpec {
        // The file is part of the crate and covered by a unit test, so a failure here is a build defect.
        Self::from_yaml(crate::DEMO_SPEC).expect("built-in demo spec is valid")
    }

    /// Total number of pods over all namespaces.
    pub fn pod_count(&self) -> usize {
        self.namespaces.iter().map(|n| n.pods.len()).sum()
    }

    /// Check every rule; the first violation is returned. Parsing already rejected unknown fields and bad types.
    pub fn validate(&self) -> Result<(), SpecError> {
        if let Some(name) = &self.name {
            validate_lab_name(name)?;
        }
        if self.namespaces.is_empty() {
            return Err(invalid("namespaces", "at least one namespace is required"));
        }
        let mut seen_ns: HashMap<&str, usize> = HashMap::new();
        for (i, ns) in self.namespaces.iter().enumerate() {
            let p = format!("namespaces[{i}]");
            check_dns_label(format!("{p}.name"), &ns.name)?;
            if let Some(first) = seen_ns.insert(&ns.name, i) {
                return Err(invalid(
                    format!("{p}.name"),
                    format!(
                        "duplicate namespace {:?} (also namespaces[{first}])",
                        ns.name
                    ),
                ));
            }
            check_labels(format!("{p}.labels"), &ns.labels)?;
            if let Some(v) = ns.labels.get(NAMESPACE_NAME_LABEL) {
                if v != &ns.name {
                    return Err(invalid(
                        format!("{p}.labels"),
                        format!("{NAMESPACE_NAME_LABEL:?} is set automatically to the namespace name {:?}; remove it", ns.name),
                    ));
                }
            }
            self.validate_pods(&p, ns)?;
        }
        let pods = self.pod_count();
        if pods == 0 {
            return Err(invalid(
                "namespaces",
                "the lab has no pods; add at least one under namespaces[].pods",
            ));
        }
        if pods > MAX_PODS {
            return Err(invalid(
                "namespaces",
                format!("{pods} pods in total; a lab holds at most {MAX_PODS}"),
            ));
        }
        Ok(())
    }

    fn validate_pods(&self, p: &str, ns: &NamespaceSpec) -> Result<(), SpecError> {
        let mut seen_pod: HashMap<&str, usize> = HashMap::new();
        for (j, pod) in ns.pods.iter().enumerate() {
            let pp = format!("{p}.pods[{j}]");
            check_dns_label(format!("{pp}.name"), &pod.name)?;
            if let Some(first) = seen_pod.insert(&pod.name, j) {
                return Err(invalid(
                    format!("{pp}.name"),
                    format!(
                        "duplicate pod {:?} in namespace {:?} (also pods[{first}])",
                        pod.name, ns.name
                    ),
                ));
            }
            check_labels(format!("{pp}.labels"), &pod.labels)?;
            let mut seen_name: HashMap<&str, usize> = HashMap::new();
            let mut seen_port: HashMap<(u16, Protocol), usize> = HashMap::new();
            for (k, port) in pod.ports.iter().enumerate() {
                let pq = format!("{pp}.ports[{k}]");
                if port.port == 0 {
                    // Same shape as the parse-time message (serde_norway reports the port's struct as the path).
                    return Err(invalid(pq, "port 0 is out of range 1..65535"));
                }
                if let Some(name) = &port.name {
                    if !is_iana_svc_name(name) {
                        return Err(invalid(
                            format!("{pq}.name"),
                            format!("{name:?} is not a valid port name (IANA service name: at most 15 lowercase letters, digits and '-', at least one letter, no leading, trailing or double '-')"),
                        ));
                    }
                    if let Some(first) = seen_name.insert(name, k) {
                        return Err(invalid(
                            format!("{pq}.name"),
                            format!("duplicate port name {name:?} (also ports[{first}])"),
                        ));
                    }
                }
                if let Some(first) = seen_port.insert((port.port, port.protocol), k) {
                    return Err(invalid(
                        format!("{pq}.port"),
                        format!(
                            "duplicate port {}/{} (also ports[{first}])",
                            port.port, port.protocol
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_spec_is_valid() {
        let spec = LabSpec::demo();
        assert!(spec.pod_count() >= 3);
        assert!(spec.namespaces.len() >= 2);
    }

    #[test]
    fn programmatic_specs_are_validated_too() {
        let mut spec =
            LabSpec::from_yaml("namespaces: [{name: x, pods: [{name: a, ports: [{port: 80}]}]}]")
                .unwrap();
        spec.namespaces[0].pods[0].ports[0].port = 0;
        assert_eq!(
            spec.validate().unwrap_err().to_string(),
            "namespaces[0].pods[0].ports[0]: port 0 is out of range 1..65535"
        );
        spec.namespaces[0].pods[0].ports[0].port = 80;
        spec.name = Some("Bad".into());
        assert!(spec
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with(r#"name: "Bad" is not a valid DNS-1123 label"#));
    }

    #[test]
    fn defaults() {
        let spec =
            LabSpec::from_yaml("namespaces: [{name: x, pods: [{name: a, ports: [{port: 80}]}]}]")
                .unwrap();
        assert_eq!(spec.name, None);
        let port = &spec.namespaces[0].pods[0].ports[0];
        assert_eq!(
            (port.port, port.protocol, port.name.as_deref()),
            (80, Protocol::Tcp, None)
        );
    }
}
