//! `fathom agent`: load and attach, run the pipeline, serve the API, detach cleanly on SIGINT
//! or SIGTERM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use fathom_bpf::features;
use fathom_bpf::sensors::SensorConfig;
use fathom_enrich::{Enricher, EnricherConfig};

use crate::api::{self, ApiState};
use crate::assembly::{hostname, AssemblyConfig};
use crate::config::AgentConfig;
use crate::hub::Hub;
use crate::kernel::{self, KernelConfig, KernelShared};
use crate::metrics::Metrics;
use crate::pipeline::{self, PipelineConfig, PipelineIo, PipelineStats};
use crate::sinks::Sinks;
use crate::status::LiveStatus;
use crate::web;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub async fn run(mut cfg: AgentConfig) -> anyhow::Result<()> {
    cfg.validate()?;
    if !is_root() {
        anyhow::bail!("fathom agent must run as root (it loads BPF programs: CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN)");
    }
    let node = cfg.node.clone().unwrap_or_else(hostname);
    crate::inventory::set_lab_scope(&cfg.labs);
    if cfg.policy.labs.is_empty() {
        // Policy is enforced where the agent watches, unless narrowed further.
        cfg.policy.labs = cfg.labs.clone();
    }
    for line in features::ensure_mounts() {
        tracing::info!("{line}");
    }
    let report = features::probe();
    for line in features::describe_missing(&report) {
        tracing::warn!("{line}");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(KernelShared::default());
    let (tx, rx) = sync_channel(cfg.event_queue);
    let kcfg = KernelConfig {
        sensors: SensorConfig {
            flow_table_entries: cfg.flow_table_entries,
            ..Default::default()
        },
        attach: cfg.attach,
        interfaces: cfg.interfaces.clone(),
        exclude_interfaces: cfg.exclude_interfaces.clone(),
        resync_interval: Duration::from_secs(1),
    };
    let kt = kernel::start(
        kcfg,
        report.clone(),
        tx,
        Arc::clone(&stop),
        Arc::clone(&shared),
    )
    .context("loading Fathom's BPF programs")?;

    // After the exec/exit probes are attached, so no process falls between scan and events.
    let enricher = match Enricher::new(EnricherConfig::default()) {
        Ok(e) => Some(Arc::new(e)),
        Err(e) => {
            tracing::warn!(
                "process table unavailable ({e}): records carry only what the kernel reports"
            );
            None
        }
    };

    let (store_writer, store_thread) = open_store(&cfg).await;
    let store_reader = store_writer.as_ref().and_then(|w| match w.reader() {
        Ok(r) => Some(Arc::new(r)),
        Err(e) => {
            tracing::warn!("flow history cannot be read ({e}): observe answers from memory only");
            None
        }
    });

    let hub = Hub::new(cfg.hub_capacity);
    let pstats = Arc::new(Mutex::new(PipelineStats::default()));
    let pcfg = PipelineConfig {
        assembly: AssemblyConfig {
            end_linger: cfg.end_linger,
            tcp_idle_timeout: cfg.tcp_idle_timeout,
            other_idle_timeout: cfg.idle_timeout,
            update_interval: cfg.update_interval,
            node: node.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    let metrics = Arc::new(Metrics::new(
        cfg.metrics_context,
        Arc::clone(&shared),
        Arc::clone(&pstats),
        Arc::clone(&hub),
        store_writer.clone(),
    ));
    let sinks = Sinks::new(
        Arc::clone(&hub),
        Some(Arc::clone(&metrics.records)),
        store_writer.clone(),
    );
    // The shield's audit records go to the same sinks as everything else.
    let shield = if cfg.shield.enabled {
        let s = Arc::clone(&sinks);
        let emit: crate::shield::Emit = Arc::new(move |r| s.emit(r));
        let s = crate::shield::ShieldService::start(&cfg.shield, node.clone(), emit)?;
        let flood = cfg.detect.enabled.then(|| cfg.detect.clone());
        s.spawn_upkeep(Arc::clone(&shared), Arc::clone(&stop), flood);
        Some(s)
    } else {
        None
    };
    if cfg.detect.enabled {
        let responder = shield.clone().map(|sh| -> crate::detect::Responder {
            Box::new(move |ip, secs, why| {
                sh.auto_block(ip, secs, why)
                    .map(|v| format!("blocked {} for {secs}s at the shield", v.cidr))
            })
        });
        sinks.set_detectors(crate::detect::Detectors::from_config(
            cfg.detect.clone(),
            node.clone(),
            responder,
        )?);
    }
    let io = PipelineIo {
        events: rx,
        flow_table: kt.flow_table,
        enricher,
        sinks: Arc::clone(&sinks),
        stats: Arc::clone(&pstats),
    };
    let l7_enricher = io.enricher.clone();
    let pt = pipeline::start(pcfg, io, Arc::clone(&stop))?;
    let (policy, policy_thread) = start_policy(&cfg, &sinks, &node, &stop);
    let l7t = if cfg.l7_enabled {
        let l7io = crate::l7live::L7Io {
            enricher: l7_enricher,
            sinks: Arc::clone(&sinks),
            status: Arc::clone(&shared.l7),
        };
        let l7cfg = crate::l7live::L7LiveConfig {
            capture_bytes: cfg.l7_capture_bytes,
            max_streams: 16_384,
        };
        match crate::l7live::start(l7cfg, l7io, Arc::clone(&stop)) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!("live L7 capture disabled: {e}");
                None
            }
        }
    } else {
        None
    };

    let listener = api::bind(&cfg.socket).await?;
    let status = LiveStatus {
        started: Instant::now(),
        node,
        socket: cfg.socket.display().to_string(),
        features: report,
        kernel: Arc::clone(&shared),
        pipeline: pstats,
        hub: Arc::clone(&hub),
        store: store_writer.clone(),
        shield: shield.clone(),
    };
    let api_state = ApiState {
        hub,
        status: Arc::new(status),
        store: store_reader,
        shield,
    };
    // Policy routes change what the kernel drops: unix socket (root) only, never the web listener.
    let app = api::router(api_state.clone()).merge(crate::policy_api::router(policy));
    tracing::info!(socket = %cfg.socket.display(), "agent ready");
    eprintln!(
        "fathom agent: ready, API on {} (fathom observe -f to watch flows)",
        cfg.socket.display()
    );

    // One signal ends every server: a watch channel flipped by SIGINT/SIGTERM.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {},
        }
        tracing::info!("stopping");
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let web_task = cfg.web_address.map(|addr| {
        eprintln!("fathom agent: web UI on http://{addr}/, metrics on http://{addr}/metrics");
        let router = web::router(
            api_state.clone(),
            Arc::clone(&metrics),
            cfg.web_token.clone(),
        );
        let done = stopped(stop_rx.clone());
        tokio::spawn(async move {
            if let Err(e) = web::serve(addr, router, done).await {
                tracing::error!("web listener: {e}");
            }
        })
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(stopped(stop_rx))
        .await;
    if let Some(t) = web_task {
        let _ = t.await;
    }

    stop.store(true, Ordering::Relaxed);
    let _ = std::fs::remove_file(&cfg.socket);
    let k = tokio::task::spawn_blocking(move || {
        if let Some(h) = l7t {
            let _ = h.join();
        }
        (kt.handle.join(), pt.join())
    })
    .await;
    if let Ok((Err(_), _) | (_, Err(_))) = k {
        tracing::error!("a worker thread panicked during shutdown");
    }
    if let Some(t) = policy_thread {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    // The pipeline has published its last records: flush the history and close it.
    if let (Some(w), Some(t)) = (store_writer, store_thread) {
        w.shutdown();
        match tokio::task::spawn_blocking(move || t.join()).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!("flow history: {e}"),
            _ => tracing::error!("the flow history writer panicked"),
        }
    }
    eprintln!("fathom agent: stopped, programs detached");
    served.context("serving the API")
}

/// Start network policy enforcement; without it the agent still observes, and the policy
/// routes answer why not.
fn start_policy(
    cfg: &AgentConfig,
    sinks: &Arc<Sinks>,
    node: &str,
    stop: &Arc<AtomicBool>,
) -> (
    crate::policy_engine::PolicyHandle,
    Option<std::thread::JoinHandle<()>>,
) {
    use crate::policy_engine::{self, PolicyHandle, PolicySinks};
    if !cfg.policy.enabled {
        return (PolicyHandle::disconnected(), None);
    }
    let sinks = PolicySinks {
        sinks: Arc::clone(sinks),
        node: node.to_string(),
    };
    match policy_engine::start(cfg.policy.clone(), sinks, Arc::clone(stop)) {
        Ok((h, t)) => (h, Some(t)),
        Err(e) => {
            tracing::error!("network policy disabled: {e}");
            (PolicyHandle::disconnected(), None)
        }
    }
}

type StoreThread = std::thread::JoinHandle<Result<(), fathom_store::StoreError>>;

/// Open (or recover) the flow history. Failing to is not fatal: the agent runs on its
/// in-memory ring and says why.
async fn open_store(cfg: &AgentConfig) -> (Option<fathom_store::StoreWriter>, Option<StoreThread>) {
    if !cfg.store_enabled {
        return (None, None);
    }
    let sc = cfg.store.clone();
    let path = sc.path.display().to_string();
    match tokio::task::spawn_blocking(move || fathom_store::Store::spawn_writer(sc)).await {
        Ok(Ok((w, t))) => {
            if let Some(r) = w.recovered() {
                tracing::error!("flow history at {path} was unusable and was moved aside: {r:?}");
            }
            tracing::info!(%path, "flow history open");
            (Some(w), Some(t))
        }
        Ok(Err(e)) => {
            tracing::warn!(
                "flow history at {path} unavailable ({e}): keeping records in memory only"
            );
            (None, None)
        }
        Err(e) => {
            tracing::warn!("flow history at {path} unavailable ({e})");
            (None, None)
        }
    }
}
