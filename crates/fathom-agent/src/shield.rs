//! The agent's side of the XDP shield: load it with the configured mode, rates and allowlist,
//! re-adopt the pinned blocklist, attach to ingress interfaces as they appear, apply
//! block/unblock requests from the local API, reap expired blocks, and audit every change as
//! an alert record (`shield_block`, `shield_unblock`, `shield_expired`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fathom_bpf::shield::{
    boot_time_ns, parse_cidr, BlockEntry, RateLimits, Shield, ShieldCounters, ShieldDropEvent,
    ShieldInterface, ShieldMode, ShieldSettings, DEFAULT_PIN_ROOT, ORIGIN_DETECTOR,
    ORIGIN_OPERATOR,
};
use fathom_model::alert::kind;
use fathom_model::{Alert, Endpoint, Record, Severity, Timestamp};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::kernel::KernelShared;

/// `shield:` in the agent config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ShieldConfig {
    /// Off by default: XDP sits in front of every packet of the chosen interfaces.
    pub enabled: bool,
    /// Interfaces to protect; empty: every interface the flow sensor watches (except lo).
    pub interfaces: Vec<String>,
    pub mode: ShieldMode,
    /// Per-source TCP SYNs per second (0: no SYN limit) and bucket size.
    pub syn_per_sec: u64,
    pub syn_burst: u64,
    /// Per-source packets per second (0: no packet limit) and bucket size.
    pub packets_per_sec: u64,
    pub packet_burst: u64,
    /// Drop events per CPU per second (counters are exact regardless).
    pub events_per_sec: u32,
    /// CIDRs the shield never drops.
    pub allowlist: Vec<String>,
    /// Where the blocklist and counters are pinned (survive agent restarts).
    pub pin_root: PathBuf,
}

impl Default for ShieldConfig {
    fn default() -> Self {
        ShieldConfig {
            enabled: false,
            interfaces: Vec::new(),
            mode: ShieldMode::Enforce,
            syn_per_sec: 0,
            syn_burst: 0,
            packets_per_sec: 0,
            packet_burst: 0,
            events_per_sec: 100,
            allowlist: Vec::new(),
            pin_root: PathBuf::from(DEFAULT_PIN_ROOT),
        }
    }
}

impl ShieldConfig {
    pub fn settings(&self) -> ShieldSettings {
        ShieldSettings {
            mode: self.mode,
            rates: RateLimits {
                syn_per_sec: self.syn_per_sec,
                syn_burst: self.syn_burst,
                packets_per_sec: self.packets_per_sec,
                packet_burst: self.packet_burst,
            },
            events_per_sec: self.events_per_sec,
        }
    }

    /// All-or-nothing: every allowlist entry parses and the rates are representable.
    pub fn validate(&self) -> Result<Vec<IpNet>, String> {
        self.settings()
            .validate()
            .map_err(|e| format!("shield: {e}"))?;
        self.allowlist
            .iter()
            .enumerate()
            .map(|(i, s)| parse_cidr(s).map_err(|e| format!("shield.allowlist[{i}]: {e}")))
            .collect()
    }
}

/// What `POST /v1/shield/block` takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockRequest {
    pub cidr: String,
    /// Seconds until the block lapses; None: until unblocked.
    pub for_secs: Option<u64>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnblockRequest {
    pub cidr: String,
}

/// One row of `fathom blocks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockView {
    pub cidr: String,
    /// Seconds left; None: permanent.
    pub expires_in_secs: Option<f64>,
    pub origin: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShieldStatusView {
    pub mode: ShieldMode,
    pub settings: ShieldSettings,
    pub interfaces: Vec<ShieldInterface>,
    pub blocks: usize,
    pub allowlist: Vec<String>,
    pub counters: ShieldCounters,
    pub pin_root: String,
    pub errors: Vec<String>,
}

/// Where audit records go: the pipeline's sinks (hub, store, metrics).
pub type Emit = Arc<dyn Fn(Record) + Send + Sync>;

struct Inner {
    shield: Shield,
    /// Reasons given by operators, by CIDR (user space only: the kernel keeps no text).
    errors: Vec<String>,
}

pub struct ShieldService {
    inner: Mutex<Inner>,
    cfg: ShieldConfig,
    emit: Emit,
    node: String,
}

// SAFETY: the skeleton inside `Shield` holds raw libbpf pointers, which makes it !Send by
// default; libbpf objects are not tied to a thread, and every access to this one goes through
// the Mutex in ShieldService, so moving it between threads is sound.
unsafe impl Send for Inner {}

impl ShieldService {
    /// Load, apply config and allowlist, re-adopt pins. Fails on bad config before touching
    /// the kernel.
    pub fn start(cfg: &ShieldConfig, node: String, emit: Emit) -> anyhow::Result<Arc<Self>> {
        let allow = cfg.validate().map_err(anyhow::Error::msg)?;
        let shield = Shield::load(Some(&cfg.pin_root), &cfg.settings())
            .map_err(|e| anyhow::anyhow!("loading the XDP shield: {e}"))?;
        shield
            .set_allowlist(&allow)
            .map_err(|e| anyhow::anyhow!("shield allowlist: {e}"))?;
        let adopted = shield.blocks().len();
        if adopted > 0 {
            tracing::info!(
                "shield: re-adopted {adopted} blocklist entries from {}",
                cfg.pin_root.display()
            );
        }
        Ok(Arc::new(ShieldService {
            inner: Mutex::new(Inner {
                shield,
                errors: Vec::new(),
            }),
            cfg: cfg.clone(),
            emit,
            node,
        }))
    }

    fn audit(
        &self,
        kind_: &str,
        net: &IpNet,
        summary: String,
        reason: Option<&str>,
        action: Option<String>,
    ) {
        let mut details = std::collections::BTreeMap::new();
        details.insert("cidr".to_string(), net.to_string());
        if let Some(r) = reason {
            details.insert("reason".to_string(), r.to_string());
        }
        (self.emit)(Record::from(Alert {
            time: Timestamp::now(),
            kind: kind_.to_string(),
            severity: Severity::Info,
            summary,
            source: Some(Endpoint::new(net.network(), 0)),
            destination: None,
            evidence: Default::default(),
            details,
            window_secs: None,
            action,
            node: self.node.clone(),
        }));
    }

    /// Apply a block; `origin` says who asked. The kernel sees it when this returns.
    pub fn block(&self, req: &BlockRequest, origin: u32) -> Result<BlockView, String> {
        let net = parse_cidr(&req.cidr)?;
        if req.for_secs == Some(0) {
            return Err("--for must be at least 1s".into());
        }
        let expires = req
            .for_secs
            .map(|s| boot_time_ns().saturating_add(s.saturating_mul(1_000_000_000)));
        let g = self
            .inner
            .lock()
            .map_err(|_| "shield state poisoned".to_string())?;
        g.shield
            .set_note(&net, req.reason.as_deref())
            .and_then(|()| g.shield.block(&net, expires, origin))
            .map_err(|e| format!("blocking {net}: {e}"))?;
        drop(g);
        let dur = req
            .for_secs
            .map(|s| format!(" for {s}s"))
            .unwrap_or_default();
        self.audit(
            kind::SHIELD_BLOCK,
            &net,
            format!("blocked {net}{dur}"),
            req.reason.as_deref(),
            Some(format!("blocklist add {net}{dur}")),
        );
        Ok(BlockView {
            cidr: net.to_string(),
            expires_in_secs: req.for_secs.map(|s| s as f64),
            origin: origin_name(origin).into(),
            reason: req.reason.clone(),
        })
    }

    /// Ok(false): it was not blocked.
    pub fn unblock(&self, cidr: &str) -> Result<bool, String> {
        let net = parse_cidr(cidr)?;
        let g = self
            .inner
            .lock()
            .map_err(|_| "shield state poisoned".to_string())?;
        let reason = g.shield.note(&net);
        let was = g
            .shield
            .unblock(&net)
            .map_err(|e| format!("unblocking {net}: {e}"))?;
        drop(g);
        if was {
            self.audit(
                kind::SHIELD_UNBLOCK,
                &net,
                format!("unblocked {net}"),
                reason.as_deref(),
                Some(format!("blocklist remove {net}")),
            );
        }
        Ok(was)
    }

    pub fn blocks(&self) -> Vec<BlockView> {
        let Ok(g) = self.inner.lock() else {
            return Vec::new();
        };
        let now = boot_time_ns();
        g.shield
            .blocks()
            .into_iter()
            .map(|b: BlockEntry| BlockView {
                cidr: b.cidr.to_string(),
                expires_in_secs: b.expires_ns.map(|t| t.saturating_sub(now) as f64 / 1e9),
                origin: origin_name(b.origin).into(),
                reason: b.reason,
            })
            .collect()
    }

    /// Remove lapsed blocks and audit each.
    pub fn reap(&self) {
        let gone = match self.inner.lock() {
            Ok(g) => g.shield.reap_expired(boot_time_ns()),
            Err(_) => return,
        };
        for e in gone {
            self.audit(
                kind::SHIELD_EXPIRED,
                &e.cidr,
                format!("block of {} expired", e.cidr),
                e.reason.as_deref(),
                Some(format!("blocklist remove {}", e.cidr)),
            );
        }
    }

    /// Attach to interfaces that should have the shield and do not yet.
    pub fn sync_interfaces(&self, watched: &[(u32, String)]) {
        let Ok(mut g) = self.inner.lock() else {
            return;
        };
        let have: Vec<u32> = g.shield.interfaces().iter().map(|i| i.ifindex).collect();
        let wanted: Vec<(u32, String)> = if self.cfg.interfaces.is_empty() {
            watched.iter().filter(|(_, n)| n != "lo").cloned().collect()
        } else {
            self.cfg
                .interfaces
                .iter()
                .filter_map(|n| ifindex(n).map(|i| (i, n.clone())))
                .collect()
        };
        for (i, name) in wanted {
            if have.contains(&i) {
                continue;
            }
            match g.shield.attach(i, &name) {
                Ok(mode) => tracing::info!("shield: XDP on {name} ({mode})"),
                Err(e) => {
                    let msg = e.to_string();
                    if !g.errors.contains(&msg) {
                        tracing::warn!("shield: {msg}");
                        g.errors.push(msg);
                    }
                }
            }
        }
        // Interfaces that went away: drop our link (the kernel already detached it).
        for i in have {
            if ifname(i).is_none() {
                g.shield.detach(i);
            }
        }
    }

    pub fn status(&self) -> Option<ShieldStatusView> {
        let g = self.inner.lock().ok()?;
        let settings = g.shield.settings();
        Some(ShieldStatusView {
            mode: settings.mode,
            settings,
            interfaces: g.shield.interfaces(),
            blocks: g.shield.blocks().len(),
            allowlist: g.shield.allows().iter().map(|n| n.to_string()).collect(),
            counters: g.shield.counters(),
            pin_root: self.cfg.pin_root.display().to_string(),
            errors: g.errors.clone(),
        })
    }

    /// Background upkeep, four times a second: attach to new interfaces, reap expired blocks,
    /// and (with `flood`) turn the shield's SYN-rate drop events into SYN-flood alerts.
    pub fn spawn_upkeep(
        self: &Arc<Self>,
        kernel: Arc<KernelShared>,
        stop: Arc<AtomicBool>,
        flood: Option<crate::detect::DetectConfig>,
    ) {
        let me = Arc::clone(self);
        let _ = std::thread::Builder::new()
            .name("fathom-shield".into())
            .spawn(move || {
                let events = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
                let sink = std::rc::Rc::clone(&events);
                // The reader lives on this thread; the maps it reads live as long as `me`.
                let rb = flood.as_ref().and_then(|_| {
                    let g = me.inner.lock().ok()?;
                    g.shield
                        .ring_buffer(move |e: ShieldDropEvent| {
                            if e.reason == "syn_rate" {
                                sink.borrow_mut().push(e);
                            }
                        })
                        .ok()
                });
                let mut watch = flood
                    .as_ref()
                    .map(crate::detect::shieldflood::ShieldFloodWatch::new);
                let mut inventory = crate::inventory::Inventory::current();
                let mut last_inventory = std::time::Instant::now();
                // Events are a rate-limited sample; the per-reason counter is exact. Each tick's
                // new SYN-rate drops are spread over that tick's sampled events (or, when the
                // event budget is spent, over the latest sample).
                let syn_drops = |me: &ShieldService| {
                    me.inner.lock().ok().map_or(0, |g| {
                        g.shield
                            .counters()
                            .drop_count(fathom_bpf::abi::shield::ShieldReason::SynRate)
                    })
                };
                let mut last_count = syn_drops(&me);
                let mut sample: Vec<ShieldDropEvent> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let (Some(rb), Some(w)) = (&rb, watch.as_mut()) {
                        let _ = rb.consume();
                        let batch: Vec<ShieldDropEvent> = events.borrow_mut().drain(..).collect();
                        let count = syn_drops(&me);
                        let new = count.saturating_sub(last_count);
                        last_count = count;
                        if !batch.is_empty() {
                            sample = batch;
                        }
                        // In monitor mode the flood reaches the flow sensor, whose detector
                        // reports it with half-open evidence: no second alert from here.
                        let enforcing = me
                            .inner
                            .lock()
                            .is_ok_and(|g| g.shield.settings().mode == ShieldMode::Enforce);
                        if enforcing && new > 0 && !sample.is_empty() {
                            if last_inventory.elapsed() > Duration::from_secs(1) {
                                inventory = crate::inventory::Inventory::current();
                                last_inventory = std::time::Instant::now();
                            }
                            let name = |ip: IpAddr, port: u16| inventory.endpoint(ip, port);
                            let n = sample.len() as u64;
                            let now = boot_time_ns();
                            for (i, e) in sample.iter().enumerate() {
                                let weight = new / n + u64::from((i as u64) < new % n);
                                if weight == 0 {
                                    continue;
                                }
                                let d = crate::detect::shieldflood::SynDrop {
                                    ts_ns: now,
                                    weight,
                                    src: e.src,
                                    dst: e.dst,
                                    dport: e.dport,
                                };
                                if let Some(a) = w.observe(&d, &me.node, &name) {
                                    (me.emit)(Record::from(a));
                                }
                            }
                        }
                    }
                    let watched: Vec<(u32, String)> = kernel
                        .status
                        .lock()
                        .map(|s| {
                            s.interfaces
                                .iter()
                                .map(|i| (i.ifindex, i.name.clone()))
                                .collect()
                        })
                        .unwrap_or_default();
                    me.sync_interfaces(&watched);
                    me.reap();
                    std::thread::sleep(Duration::from_millis(250));
                }
            });
    }

    /// A detector's automatic response (audited like an operator's block).
    pub fn auto_block(&self, ip: IpAddr, for_secs: u64, reason: &str) -> Result<BlockView, String> {
        self.block(
            &BlockRequest {
                cidr: IpNet::from(ip).to_string(),
                for_secs: Some(for_secs.max(1)),
                reason: Some(reason.to_string()),
            },
            ORIGIN_DETECTOR,
        )
    }
}

fn origin_name(o: u32) -> &'static str {
    if o == ORIGIN_OPERATOR {
        "operator"
    } else {
        "detector"
    }
}

fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

fn ifname(i: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(i, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    Some(
        unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}
