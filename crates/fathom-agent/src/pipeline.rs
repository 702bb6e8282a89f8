//! The pipeline thread: kernel events in (decoded), flow records out to the hub. It owns the
//! user-space state that joins the kernel's views: socket attribution, the process table, the
//! pod inventory, and the flow assembler that reconciles with the kernel flow table each tick.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fathom_bpf::events::KernelEvent;
use fathom_bpf::flowtable;
use fathom_bpf::flowtable::MapHandle;
use fathom_enrich::Enricher;
use fathom_model::Record;

use crate::assembly::{AssemblyConfig, AssemblyStats, Context, FlowAssembler};
use crate::attribution::Attribution;
use crate::clock::{boot_ns, BootClock};
use crate::drops::DropDecoder;
use crate::interfaces::host_interfaces;
use crate::inventory::Inventory;
use crate::sinks::Sinks;

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub assembly: AssemblyConfig,
    /// How often the kernel flow table is reconciled.
    pub tick: Duration,
    pub attribution_ttl: Duration,
    pub attribution_max: usize,
    pub inventory_refresh: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            assembly: AssemblyConfig::default(),
            tick: Duration::from_millis(500),
            attribution_ttl: Duration::from_secs(120),
            attribution_max: 262_144,
            inventory_refresh: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PipelineStats {
    pub events: BTreeMap<&'static str, u64>,
    pub flows: AssemblyStats,
    pub attribution_entries: usize,
    pub attribution_evicted: u64,
    pub kernel_table_entries: usize,
    pub pods: usize,
}

/// What the pipeline reads from and writes to.
pub struct PipelineIo {
    pub events: Receiver<KernelEvent>,
    pub flow_table: MapHandle,
    pub enricher: Option<Arc<Enricher>>,
    pub sinks: Arc<Sinks>,
    pub stats: Arc<Mutex<PipelineStats>>,
}

pub fn start(
    cfg: PipelineConfig,
    io: PipelineIo,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let PipelineIo {
        events: rx,
        flow_table: table,
        enricher,
        sinks,
        stats,
    } = io;
    std::thread::Builder::new()
        .name("fathom-pipeline".into())
        .spawn(move || {
            let mut p = Pipeline {
                assembler: FlowAssembler::new(cfg.assembly.clone()),
                enrichment: Enrichment {
                    attribution: Attribution::new(cfg.attribution_ttl, cfg.attribution_max),
                    inventory: Inventory::current(),
                    ifnames: BTreeMap::new(),
                    clock: BootClock::new(),
                    enricher,
                },
                sinks,
                counts: BTreeMap::new(),
                drops: DropDecoder::load(),
                node: cfg.assembly.node.clone(),
            };
            p.enrichment.refresh_names();
            let mut next_tick = Instant::now() + cfg.tick;
            let mut next_refresh = Instant::now() + cfg.inventory_refresh;
            while !stop.load(Ordering::Relaxed) {
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(ev) => {
                        p.handle(ev);
                        // Drain a burst before looking at the clock again.
                        for ev in rx.try_iter().take(4096) {
                            p.handle(ev);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                let now = Instant::now();
                if now >= next_refresh {
                    p.enrichment.inventory = Inventory::current();
                    p.enrichment.refresh_names();
                    p.enrichment.attribution.expire(now);
                    if let Some(e) = &p.enrichment.enricher {
                        e.expire();
                    }
                    next_refresh = now + cfg.inventory_refresh;
                }
                if now >= next_tick {
                    let snapshot = flowtable::snapshot(&table);
                    let table_len = snapshot.len();
                    p.tick(&snapshot, &table);
                    next_tick = now + cfg.tick;
                    if let Ok(mut s) = stats.lock() {
                        s.events = p.counts.clone();
                        s.flows = p.assembler.stats;
                        s.attribution_entries = p.enrichment.attribution.len();
                        s.attribution_evicted = p.enrichment.attribution.evicted;
                        s.kernel_table_entries = table_len;
                        s.pods = p.enrichment.inventory.pods().len();
                    }
                }
            }
            // Events still queued belong to flows that exist: account for them, then close all.
            for ev in rx.try_iter() {
                p.handle(ev);
            }
            p.shutdown();
        })
}

/// The state records are enriched from; kept apart from the assembler so both can be borrowed
/// at once.
struct Enrichment {
    attribution: Attribution,
    inventory: Arc<Inventory>,
    ifnames: BTreeMap<u32, String>,
    clock: BootClock,
    enricher: Option<Arc<Enricher>>,
}

impl Enrichment {
    fn context(&self) -> Context<'_> {
        Context {
            attribution: &self.attribution,
            inventory: &self.inventory,
            enricher: self.enricher.as_deref(),
            clock: &self.clock,
            ifnames: &self.ifnames,
        }
    }

    fn refresh_names(&mut self) {
        self.ifnames = host_interfaces(Path::new("/sys/class/net"))
            .into_iter()
            .map(|(n, i)| (i, n))
            .collect();
    }
}

struct Pipeline {
    assembler: FlowAssembler,
    enrichment: Enrichment,
    sinks: Arc<Sinks>,
    counts: BTreeMap<&'static str, u64>,
    drops: DropDecoder,
    node: String,
}

impl Pipeline {
    /// Every record leaves through here: metrics see exactly what subscribers see.
    fn emit(&self, r: Record) {
        self.sinks.emit(r);
    }

    fn count(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    fn handle(&mut self, ev: KernelEvent) {
        let mut out = Vec::new();
        match ev {
            KernelEvent::FlowStart(d) => {
                self.count("flow_start");
                let ctx = self.enrichment.context();
                self.assembler.on_start(d.key, d.value, &ctx, &mut out);
            }
            KernelEvent::FlowEnd(d, kind) => {
                self.count("flow_end");
                self.assembler.on_end(d.key, d.value, kind, boot_ns());
            }
            KernelEvent::Sock(s) => {
                self.count(match s.kind {
                    fathom_bpf::events::SockEventKind::Connect => "sock_connect",
                    fathom_bpf::events::SockEventKind::Accept => "sock_accept",
                    fathom_bpf::events::SockEventKind::Close => "sock_close",
                    fathom_bpf::events::SockEventKind::Tuple => "sock_tuple",
                });
                tracing::trace!(?s, "socket event");
                self.enrichment
                    .attribution
                    .on_sock_event(&s, Instant::now());
            }
            KernelEvent::Drop(d) => {
                self.count("drop");
                let rec = self.drops.record(
                    &d,
                    &self.enrichment.inventory,
                    &self.enrichment.clock,
                    &self.enrichment.ifnames,
                    &self.node,
                );
                self.emit(Record::from(rec));
            }
            KernelEvent::Proc(p) => {
                self.count(if p.exec { "proc_exec" } else { "proc_exit" });
                if let Some(e) = &self.enrichment.enricher {
                    if p.exec {
                        e.on_exec(p.pid, p.ppid, &p.comm, &p.filename, Some(p.cgroup_id));
                    } else {
                        e.on_exit(p.pid);
                    }
                }
            }
            // Payload events are assembled on the L7 thread (l7live.rs), not here.
            KernelEvent::L7(_) => self.count("l7_misrouted"),
        }
        for f in out {
            self.emit(Record::from(f));
        }
    }

    fn tick(
        &mut self,
        snapshot: &[(fathom_bpf::abi::FlowKeyRaw, fathom_bpf::abi::FlowValueRaw)],
        table: &MapHandle,
    ) {
        let ctx = self.enrichment.context();
        let outcome = self.assembler.tick(snapshot, boot_ns(), &ctx);
        for k in &outcome.delete {
            flowtable::remove(table, k);
        }
        for f in outcome.records {
            self.emit(Record::from(f));
        }
    }

    fn shutdown(&mut self) {
        let ctx = self.enrichment.context();
        for f in self.assembler.shutdown(&ctx) {
            self.emit(Record::from(f));
        }
    }
}
