//! What `fathom status` shows: programs, maps, attach points, counters and lost events from
//! the kernel side; queue and flow statistics from the pipeline; the feature probe.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fathom_bpf::features::FeatureReport;
use fathom_bpf::sensors::SensorStatus;
use serde::{Deserialize, Serialize};

use crate::hub::Hub;
use crate::kernel::KernelShared;
use crate::pipeline::PipelineStats;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentStatus {
    pub version: String,
    pub node: String,
    pub pid: u32,
    pub uptime_seconds: u64,
    pub socket: String,
    pub features: serde_json::Value,
    pub kernel: serde_json::Value,
    pub pipeline: serde_json::Value,
    pub events_received: u64,
    /// Events the pipeline could not take in time (its queue was full).
    pub events_dropped: u64,
    pub records_published: u64,
    pub hub_records: usize,
    pub attach_errors: Vec<String>,
    /// Flow history: rows, file size, written/dropped, oldest/newest, lag (null when disabled).
    #[serde(default)]
    pub store: serde_json::Value,
    /// XDP shield: mode, interfaces with attach mode, counters (null when disabled).
    #[serde(default)]
    pub shield: serde_json::Value,
    /// Live L7 capture: kernel counters (sent, lost, truncated, muted) and stream statistics.
    #[serde(default)]
    pub l7: serde_json::Value,
}

pub trait StatusSource: Send + Sync {
    fn status(&self) -> AgentStatus;
}

pub struct LiveStatus {
    pub started: Instant,
    pub node: String,
    pub socket: String,
    pub features: FeatureReport,
    pub kernel: Arc<KernelShared>,
    pub pipeline: Arc<Mutex<PipelineStats>>,
    pub hub: Arc<Hub>,
    pub store: Option<fathom_store::StoreWriter>,
    pub shield: Option<Arc<crate::shield::ShieldService>>,
}

impl StatusSource for LiveStatus {
    fn status(&self) -> AgentStatus {
        let kernel: SensorStatus = self.kernel.fresh_status(Duration::from_millis(300));
        let pipeline = self.pipeline.lock().map(|p| p.clone()).unwrap_or_default();
        AgentStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            node: self.node.clone(),
            pid: std::process::id(),
            uptime_seconds: self.started.elapsed().as_secs(),
            socket: self.socket.clone(),
            features: serde_json::to_value(&self.features).unwrap_or_default(),
            kernel: serde_json::to_value(&kernel).unwrap_or_default(),
            pipeline: serde_json::to_value(&pipeline).unwrap_or_default(),
            events_received: self.kernel.events_received.load(Ordering::Relaxed),
            events_dropped: self.kernel.events_dropped.load(Ordering::Relaxed),
            records_published: self.hub.published(),
            hub_records: self.hub.len(),
            attach_errors: self
                .kernel
                .attach_errors
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default(),
            store: self
                .store
                .as_ref()
                .map(|w| serde_json::to_value(w.stats()).unwrap_or_default())
                .unwrap_or_default(),
            shield: self
                .shield
                .as_ref()
                .and_then(|s| s.status())
                .map(|s| serde_json::to_value(s).unwrap_or_default())
                .unwrap_or_default(),
            l7: self
                .kernel
                .l7
                .lock()
                .map(|s| serde_json::to_value(&*s).unwrap_or_default())
                .unwrap_or_default(),
        }
    }
}
