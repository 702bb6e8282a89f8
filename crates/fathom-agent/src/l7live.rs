//! The L7 thread: live L7 capture without sidecars. Owns `l7.bpf.c` (syscall tracepoints),
//! reads its payload ringbuf, turns per-socket byte streams into L7 records
//! (`fathom_l7::live::SocketStreams`), attributes them to the process (from the kernel event,
//! completed by the process table) and the pods (lab inventory by IP), and publishes them
//! like the pipeline does (metrics, history, hub).
//!
//! It runs apart from the kernel/pipeline threads so that payload volume never delays flow
//! events, and a stream that cannot be parsed is dropped and counted, never stalling others.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fathom_bpf::l7::tls::LibsslTracker;
use fathom_bpf::l7::{L7Config, L7Event, L7EventKind, L7Role, L7Sensor};
use fathom_enrich::Enricher;
use fathom_l7::live::{LiveOptions, SocketChunk, SocketRole, SocketStreams};
use fathom_l7::session::Transport;
use fathom_model::l7::L7Record;
use fathom_model::Record;
use serde::Serialize;

use crate::clock::{boot_ns, BootClock};
use crate::inventory::Inventory;
use crate::sinks::Sinks;

#[derive(Debug, Clone)]
pub struct L7LiveConfig {
    /// Payload bytes copied per syscall.
    pub capture_bytes: u32,
    /// Socket streams parsed at once.
    pub max_streams: usize,
}

/// What `fathom status` and `/metrics` show about live L7 capture.
#[derive(Debug, Clone, Default, Serialize)]
pub struct L7Status {
    pub enabled: bool,
    /// Kernel counters of l7.bpf.c (events sent/lost, truncated, muted connections…).
    pub kernel: BTreeMap<&'static str, u64>,
    pub events: u64,
    pub decode_errors: u64,
    pub records: u64,
    pub streams: usize,
    pub chunks: u64,
    pub bytes: u64,
    pub streams_opened: u64,
    pub streams_evicted: u64,
    pub streams_unparseable: u64,
    pub unparseable_bytes: u64,
    pub gap_bytes: u64,
    pub duplicates: u64,
    pub attach: Vec<String>,
    /// libssl files carrying the TLS uprobes → processes mapping them (system ones stay).
    pub tls_libraries: BTreeMap<String, usize>,
    pub warnings: Vec<String>,
}

/// libssl files are looked for in new and exec'd processes this often.
const TLS_RESCAN: Duration = Duration::from_secs(2);
/// The ring is read at least this often (the kernel wakes the reader early only when a large
/// batch waits): the delay a record can get, against a wakeup per event.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// What the L7 thread publishes into.
pub struct L7Io {
    pub enricher: Option<Arc<Enricher>>,
    pub sinks: Arc<Sinks>,
    pub status: Arc<Mutex<L7Status>>,
}

/// An unconnected UDP socket only knows its wildcard address; a pod's process has its pod's.
fn local_address(e: &L7Event, inventory: &Inventory) -> std::net::SocketAddr {
    if !e.local.ip().is_unspecified() {
        return e.local;
    }
    let pod_ip = inventory.pod_by_cgroup(e.cgroup_id).and_then(|p| {
        p.ips
            .iter()
            .find(|ip| ip.is_ipv4() == e.remote.ip().is_ipv4())
            .copied()
    });
    match pod_ip {
        Some(ip) => std::net::SocketAddr::new(ip, e.local.port()),
        None => e.local,
    }
}

fn chunk_of<'a>(e: &'a L7Event, inventory: &Inventory) -> SocketChunk<'a> {
    SocketChunk {
        pid: e.pid,
        tid: e.tid,
        comm: &e.comm,
        cgroup_id: e.cgroup_id,
        fd: e.fd,
        cookie: e.cookie,
        transport: if e.l4proto == 17 {
            Transport::Udp
        } else {
            Transport::Tcp
        },
        local: local_address(e, inventory),
        remote: e.remote,
        role: match e.role {
            L7Role::Client => SocketRole::Client,
            L7Role::Server => SocketRole::Server,
            L7Role::Unknown => SocketRole::Unknown,
        },
        egress: e.egress,
        ts_ns: e.ts_ns,
        moved: e.ret.max(0) as u64,
        data: &e.data,
        tls: e.tls,
    }
}

struct Publisher {
    io: L7Io,
    inventory: Arc<Inventory>,
    clock: BootClock,
}

impl Publisher {
    /// Pods by IP, process details from the process table, wall-clock times.
    fn publish(&self, mut r: L7Record) {
        r.source = self.inventory.endpoint(r.source.ip, r.source.port);
        r.destination = self
            .inventory
            .endpoint(r.destination.ip, r.destination.port);
        if let (Some(p), Some(e)) = (&r.process, &self.io.enricher) {
            let full = e.process_info(p.pid, p.tid, Some(&p.comm), p.cgroup_id);
            r.process = Some(full);
        }
        let clock = &self.clock;
        r.time = clock.to_wall(r.time.0);
        r.exchange.request_time = r.exchange.request_time.map(|t| clock.to_wall(t.0));
        r.exchange.response_time = r.exchange.response_time.map(|t| clock.to_wall(t.0));
        self.io.sinks.emit(Record::from(r));
    }
}

pub fn start(cfg: L7LiveConfig, io: L7Io, stop: Arc<AtomicBool>) -> anyhow::Result<JoinHandle<()>> {
    let (ready_tx, ready_rx) = sync_channel::<Result<(), String>>(1);
    let handle = std::thread::Builder::new()
        .name("fathom-l7".into())
        .spawn(move || {
            let sensor = match L7Sensor::load(&L7Config {
                capture_bytes: cfg.capture_bytes,
                ..Default::default()
            }) {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            // Events go from the ring straight into the streams (no queue, no copy): the
            // callback runs inside `rb.poll`, never while the loop below holds `intake`.
            let intake = Rc::new(RefCell::new(Intake {
                streams: SocketStreams::new(LiveOptions {
                    max_streams: cfg.max_streams,
                    ..Default::default()
                }),
                out: Vec::new(),
                events: 0,
                inventory: Inventory::current(),
            }));
            let sink = Rc::clone(&intake);
            let bad = Arc::new(AtomicU64::new(0));
            let bad_sink = Arc::clone(&bad);
            let rb = match sensor.ring_buffer(
                move |e| sink.borrow_mut().take(e),
                move || {
                    bad_sink.fetch_add(1, Ordering::Relaxed);
                },
            ) {
                Ok(rb) => rb,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let attach: Vec<String> = sensor
                .attach_points()
                .into_iter()
                .map(|a| a.target)
                .collect();
            // TLS plaintext: uprobes on the system libssl now, on other libssl files as
            // processes map them (rescanned below).
            let mut tls = LibsslTracker::start(&sensor);
            let mut next_tls_scan = Instant::now() + TLS_RESCAN;
            let _ = ready_tx.send(Ok(()));

            let status = Arc::clone(&io.status);
            let mut p = Publisher {
                io,
                inventory: Arc::clone(&intake.borrow().inventory),
                clock: BootClock::new(),
            };
            let mut next_refresh = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let _ = rb.poll(POLL_INTERVAL);
                {
                    let mut st = intake.borrow_mut();
                    let st = &mut *st;
                    st.streams.flush(boot_ns(), &mut st.out);
                    for r in st.out.drain(..) {
                        p.publish(r);
                    }
                }
                if Instant::now() >= next_tls_scan {
                    tls.rescan(&sensor);
                    next_tls_scan = Instant::now() + TLS_RESCAN;
                }
                if Instant::now() >= next_refresh {
                    p.inventory = Inventory::current();
                    let st = &mut *intake.borrow_mut();
                    st.inventory = Arc::clone(&p.inventory);
                    if let Ok(mut s) = status.lock() {
                        fill_status(&mut s, &sensor, &st.streams, st.events, &bad, &attach);
                        s.tls_libraries = tls.attached();
                        s.warnings.extend(tls.warnings.iter().cloned());
                    }
                    next_refresh = Instant::now() + Duration::from_secs(1);
                }
            }
            let _ = rb.poll(Duration::ZERO);
            {
                let st = &mut *intake.borrow_mut();
                st.streams.finish_all(boot_ns(), &mut st.out);
                for r in st.out.drain(..) {
                    p.publish(r);
                }
            }
            drop(rb);
            drop(tls);
            drop(sensor);
            tracing::info!("l7 capture detached");
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => {
            let _ = handle.join();
            anyhow::bail!("{e}")
        }
        Err(_) => {
            let _ = handle.join();
            anyhow::bail!("the L7 thread died while loading l7.bpf.c")
        }
    }
}

/// The streams and the records they completed, fed by the ring callback.
struct Intake {
    streams: SocketStreams,
    out: Vec<L7Record>,
    events: u64,
    inventory: Arc<Inventory>,
}

impl Intake {
    fn take(&mut self, e: &L7Event) {
        self.events += 1;
        match e.kind {
            L7EventKind::Data => self
                .streams
                .feed(&chunk_of(e, &self.inventory), &mut self.out),
            L7EventKind::Close => self
                .streams
                .close(e.pid, e.fd, e.cookie, e.ts_ns, &mut self.out),
        }
    }
}

fn fill_status(
    st: &mut L7Status,
    sensor: &L7Sensor,
    streams: &SocketStreams,
    events: u64,
    bad: &AtomicU64,
    attach: &[String],
) {
    let s = streams.stats();
    *st = L7Status {
        enabled: true,
        kernel: sensor.counters(),
        events,
        decode_errors: bad.load(Ordering::Relaxed),
        records: s.records,
        streams: streams.len(),
        chunks: s.chunks,
        bytes: s.bytes,
        streams_opened: s.streams_opened,
        streams_evicted: s.streams_evicted,
        streams_unparseable: s.streams_unparseable,
        unparseable_bytes: s.unparseable_bytes,
        gap_bytes: s.gap_bytes,
        duplicates: s.duplicates,
        attach: attach.to_vec(),
        tls_libraries: BTreeMap::new(),
        warnings: sensor.warnings.clone(),
    };
}
