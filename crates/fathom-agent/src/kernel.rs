//! The kernel thread: owns the loaded programs, polls their ringbufs, keeps the TC attachments
//! in step with the interfaces that exist, and publishes a status snapshot. Decoded events go
//! to the pipeline over a bounded channel; when it is full the event is dropped and counted,
//! so the reader never blocks and the kernel's ringbufs keep draining.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fathom_bpf::events::KernelEvent;
use fathom_bpf::features::FeatureReport;
use fathom_bpf::flowtable::MapHandle;
use fathom_bpf::sensors::{iface_flags_for, SensorConfig, SensorStatus, Sensors};

use crate::interfaces::{desired, AttachMode};
use crate::inventory::Inventory;

#[derive(Debug, Clone)]
pub struct KernelConfig {
    pub sensors: SensorConfig,
    pub attach: AttachMode,
    pub interfaces: Vec<String>,
    pub exclude_interfaces: Vec<String>,
    pub resync_interval: Duration,
}

#[derive(Default)]
pub struct KernelShared {
    pub status: Mutex<SensorStatus>,
    /// A reader wants map entry counts refreshed (see [`KernelShared::fresh_status`]).
    entries_wanted: AtomicBool,
    /// Bumped, under its lock, each time the kernel thread publishes a status.
    published: (Mutex<u64>, Condvar),
    pub events_received: AtomicU64,
    /// Events dropped because the pipeline's queue was full.
    pub events_dropped: AtomicU64,
    pub attach_errors: Mutex<Vec<String>>,
    /// Live L7 capture (l7live.rs), when enabled.
    pub l7: Arc<Mutex<crate::l7live::L7Status>>,
}

impl KernelShared {
    /// The latest status, without waiting; asks for fresh map entry counts for the next one.
    pub fn status_snapshot(&self) -> SensorStatus {
        self.entries_wanted.store(true, Ordering::Relaxed);
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// A status with map entry counts taken after this call, waiting at most `within` for the
    /// kernel thread (it looks every ~100 ms); the last snapshot if it does not answer in time.
    /// Blocking: call it off the async runtime.
    pub fn fresh_status(&self, within: Duration) -> SensorStatus {
        let (lock, cv) = &self.published;
        if let Ok(g) = lock.lock() {
            let seen = *g;
            self.entries_wanted.store(true, Ordering::Relaxed);
            let _ = cv.wait_timeout_while(g, within, |n| *n == seen);
        }
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Publish a snapshot; map entry counts not taken this time carry over from the last one.
    fn publish(&self, mut st: SensorStatus) {
        if let Ok(mut cur) = self.status.lock() {
            for m in st.maps.iter_mut().filter(|m| m.entries.is_none()) {
                m.entries = cur
                    .maps
                    .iter()
                    .find(|o| o.object == m.object && o.name == m.name)
                    .and_then(|o| o.entries);
            }
            *cur = st;
        }
        let (lock, cv) = &self.published;
        if let Ok(mut g) = lock.lock() {
            *g += 1;
            cv.notify_all();
        }
    }
}

pub struct KernelThread {
    pub handle: JoinHandle<()>,
    pub flow_table: MapHandle,
}

pub fn start(
    cfg: KernelConfig,
    features: FeatureReport,
    tx: SyncSender<KernelEvent>,
    stop: Arc<AtomicBool>,
    shared: Arc<KernelShared>,
) -> anyhow::Result<KernelThread> {
    let (ready_tx, ready_rx) = sync_channel::<Result<MapHandle, String>>(1);
    let handle = std::thread::Builder::new()
        .name("fathom-kernel".into())
        .spawn(move || {
            let mut sensors = match Sensors::load(&cfg.sensors, &features) {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let table = match sensors.flow_table() {
                Ok(t) => t,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let sink_shared = Arc::clone(&shared);
            let rb = match sensors.ring_buffer(move |ev| {
                sink_shared.events_received.fetch_add(1, Ordering::Relaxed);
                if let Err(TrySendError::Full(_)) = tx.try_send(ev) {
                    sink_shared.events_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }) {
                Ok(rb) => rb,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            sync_interfaces(&mut sensors, &cfg, &shared);
            shared.publish(sensors.status(true));
            let _ = ready_tx.send(Ok(table));

            let mut next_sync = Instant::now() + cfg.resync_interval;
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = rb.poll(Duration::from_millis(100)) {
                    // EINTR from a signal is normal at shutdown; anything else is worth a line.
                    tracing::debug!("ringbuf poll: {e}");
                }
                let wanted = shared.entries_wanted.swap(false, Ordering::Relaxed);
                if Instant::now() >= next_sync {
                    sync_interfaces(&mut sensors, &cfg, &shared);
                    next_sync = Instant::now() + cfg.resync_interval;
                } else if !wanted {
                    continue;
                }
                shared.publish(sensors.status(wanted));
            }
            // Drain what the kernel already queued, then detach everything (links drop here).
            let _ = rb.consume();
            drop(rb);
            drop(sensors);
            tracing::info!("programs detached");
        })?;

    match ready_rx.recv() {
        Ok(Ok(flow_table)) => Ok(KernelThread { handle, flow_table }),
        Ok(Err(e)) => {
            let _ = handle.join();
            anyhow::bail!("{e}")
        }
        Err(_) => {
            let _ = handle.join();
            anyhow::bail!("the kernel thread died while loading programs")
        }
    }
}

fn sync_interfaces(sensors: &mut Sensors, cfg: &KernelConfig, shared: &KernelShared) {
    let inv = Inventory::current();
    let veths: Vec<(String, u32)> = inv
        .pods()
        .iter()
        .map(|p| (p.host_ifname.clone(), p.host_ifindex))
        .collect();
    let want = desired(
        Path::new("/sys/class/net"),
        cfg.attach,
        &cfg.interfaces,
        &cfg.exclude_interfaces,
        &veths,
    );
    let want_idx: Vec<u32> = want.iter().map(|(_, i)| *i).collect();
    for idx in sensors.attached_interfaces() {
        if !want_idx.contains(&idx) {
            sensors.detach_interface(idx);
            tracing::info!(ifindex = idx, "detached from interface");
        }
    }
    let mut errors = Vec::new();
    for (name, idx) in want {
        if sensors.attached_interfaces().contains(&idx) {
            continue;
        }
        match sensors.attach_interface(idx, &name, iface_flags_for(&name)) {
            Ok(mode) => tracing::info!(interface = %name, ifindex = idx, ?mode, "attached"),
            Err(e) => {
                tracing::warn!(interface = %name, "attach failed: {e}");
                errors.push(format!("{name}: {e}"));
            }
        }
    }
    if let Ok(mut e) = shared.attach_errors.lock() {
        *e = errors;
    }
}
