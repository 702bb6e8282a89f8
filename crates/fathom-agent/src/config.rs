//! Agent configuration. Precedence: flags > FATHOM_* environment (both via clap in the CLI) >
//! config file > defaults. Defaults work with no file at all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::client::DEFAULT_SOCKET;
use crate::interfaces::AttachMode;
use crate::metrics::MetricsContext;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Unix socket of the local API.
    pub socket: PathBuf,
    pub attach: AttachMode,
    /// Interfaces to attach to in addition to what `attach` selects.
    pub interfaces: Vec<String>,
    pub exclude_interfaces: Vec<String>,
    /// Watch only these labs' pods: attach to their veths, attribute to them, enforce policy
    /// on them. Empty: every lab on the node. Two agents scoped to different labs on one host
    /// (tests, demos side by side) then never see each other's pods.
    pub labs: Vec<String>,
    /// Kernel flow table entries (LRU).
    pub flow_table_entries: u32,
    /// Records kept in memory for `observe --last/--since`.
    pub hub_capacity: usize,
    /// Kernel events queued between the ringbuf reader and the pipeline.
    pub event_queue: usize,
    #[serde(with = "humantime_serde")]
    pub end_linger: Duration,
    #[serde(with = "humantime_serde")]
    pub tcp_idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub update_interval: Duration,
    /// Node name on records; default: the host name.
    pub node: Option<String>,
    /// The web listener: `/metrics`, the read-only API (`/v1/status`, `/v1/observe`) and the
    /// web UI. `None` disables it. Bound beyond loopback it requires `web_token`.
    pub web_address: Option<std::net::SocketAddr>,
    /// Bearer token the web listener demands from every request when it is not bound to a
    /// loopback address (`Authorization: Bearer …`, or `?token=` for the browser UI).
    pub web_token: Option<String>,
    /// Source/destination labels on flow metrics: none, namespace, workload or pod.
    pub metrics_context: MetricsContext,
    /// Keep a flow history on disk (SQLite); false keeps only the in-memory ring.
    pub store_enabled: bool,
    /// Where and how long: path, max_age, max_bytes, batching (see fathom-store).
    pub store: fathom_store::StoreConfig,
    /// Network policy enforcement (policy.bpf.c on lab pods; applied policies' state dir).
    pub policy: crate::policy_engine::PolicyAgentConfig,
    /// The XDP shield (blocklist, rate limits, malformed-packet drops); off unless enabled.
    pub shield: crate::shield::ShieldConfig,
    /// Port-scan and SYN-flood detection (alerts), optional automatic blocking.
    pub detect: crate::detect::DetectConfig,
    /// Live L7 capture from syscall tracepoints (l7.bpf.c): HTTP, HTTP/2, gRPC, DNS, Redis,
    /// Kafka, PostgreSQL and MySQL records of every process, without sidecars.
    pub l7_enabled: bool,
    /// Payload bytes copied per socket syscall (1..=8192).
    pub l7_capture_bytes: u32,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            socket: PathBuf::from(DEFAULT_SOCKET),
            attach: AttachMode::Auto,
            interfaces: Vec::new(),
            exclude_interfaces: Vec::new(),
            labs: Vec::new(),
            flow_table_entries: 65536,
            hub_capacity: 100_000,
            event_queue: 65536,
            end_linger: Duration::from_secs(1),
            tcp_idle_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(30),
            update_interval: Duration::from_secs(30),
            node: None,
            web_address: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9965))),
            web_token: None,
            metrics_context: MetricsContext::Namespace,
            store_enabled: true,
            store: fathom_store::StoreConfig::default(),
            policy: crate::policy_engine::PolicyAgentConfig::default(),
            shield: crate::shield::ShieldConfig::default(),
            detect: crate::detect::DetectConfig::default(),
            l7_enabled: false,
            l7_capture_bytes: 4096,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_norway::Error,
    },
    #[error("config: {0}")]
    Invalid(String),
}

impl AgentConfig {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let cfg: AgentConfig =
            serde_norway::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.into(),
                source,
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.flow_table_entries < 1024 {
            return Err(ConfigError::Invalid(format!(
                "flow_table_entries {} is below the minimum 1024",
                self.flow_table_entries
            )));
        }
        if self.l7_capture_bytes == 0 || self.l7_capture_bytes > 8192 {
            return Err(ConfigError::Invalid(format!(
                "l7_capture_bytes {} is outside 1..=8192",
                self.l7_capture_bytes
            )));
        }
        if self.hub_capacity == 0 || self.event_queue == 0 {
            return Err(ConfigError::Invalid(
                "hub_capacity and event_queue must be at least 1".into(),
            ));
        }
        if let Some(a) = self.web_address {
            if !a.ip().is_loopback() && self.web_token.as_deref().is_none_or(|t| t.len() < 16) {
                return Err(ConfigError::Invalid(format!(
                    "web_address {a} is reachable from other hosts: set web_token (16+ characters) so that only holders of it can watch this node's traffic"
                )));
            }
        }
        if self.store_enabled {
            self.store
                .validate()
                .map_err(|e| ConfigError::Invalid(format!("store: {e}")))?;
        }
        self.shield.validate().map_err(ConfigError::Invalid)?;
        self.detect.validate().map_err(ConfigError::Invalid)?;
        if self.detect.auto_block.is_some() && !self.shield.enabled {
            return Err(ConfigError::Invalid(
                "detect.auto_block needs the shield (shield.enabled: true)".into(),
            ));
        }
        if self.end_linger > Duration::from_secs(60) {
            return Err(ConfigError::Invalid(
                "end_linger above 60s would hold every TCP end back".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_rejects_unknown_fields() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.yaml");
        std::fs::write(
            &p,
            "attach: lab\nlabs: [demo]\nidle_timeout: 5s\nflow_table_entries: 4096\n",
        )
        .unwrap();
        let c = AgentConfig::from_file(&p).unwrap();
        assert_eq!(c.attach, AttachMode::Lab);
        assert_eq!(c.labs, ["demo"]);
        assert_eq!(c.idle_timeout, Duration::from_secs(5));
        assert_eq!(c.flow_table_entries, 4096);
        assert_eq!(c.tcp_idle_timeout, AgentConfig::default().tcp_idle_timeout);

        std::fs::write(&p, "atach: lab\n").unwrap();
        let e = AgentConfig::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("unknown field `atach`"), "{e}");
        std::fs::write(&p, "flow_table_entries: 10\n").unwrap();
        let e = AgentConfig::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("below the minimum 1024"), "{e}");
        std::fs::write(&p, "web_address: 0.0.0.0:9965\n").unwrap();
        let e = AgentConfig::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("set web_token"), "{e}");
        std::fs::write(
            &p,
            "web_address: 0.0.0.0:9965\nweb_token: a-long-enough-secret\n",
        )
        .unwrap();
        assert!(AgentConfig::from_file(&p).is_ok());
        std::fs::write(&p, "idle_timeout: soon\n").unwrap();
        assert!(AgentConfig::from_file(&p).is_err());
    }
}
