//! The background writer: the pipeline hands records over without ever waiting, one thread
//! batches them into transactions and runs retention in between.
//!
//! - `try_record` is a `try_send` on a bounded channel: a full queue (or a stopped writer)
//!   drops the record and counts it in `StoreStats::dropped`.
//! - A batch is committed when it holds `batch_size` records or its first record has waited
//!   `batch_age`; one transaction, one fsync (synchronous=FULL) per batch.
//! - Durability: a committed batch survives a crash or power cut. A crash loses only what was
//!   not committed yet: the batch being filled (at most `batch_size` records or `batch_age`
//!   of traffic), plus whatever is still queued behind it, which is nothing when the writer
//!   keeps up.
//! - Clean shutdown (`shutdown`, or dropping every `StoreWriter`) loses nothing: everything
//!   accepted before it is committed, then the WAL is checkpointed and truncated.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fathom_model::{Record, Timestamp};

use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::recovery::Recovery;
use crate::retention::RetentionRun;
use crate::stats::{Shared, StoreStats};
use crate::store::{Store, StoreReader};

/// How often an idle writer looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);
/// Size-triggered retention runs at most this often (a run that cannot get under the limit,
/// e.g. while a reader pins the WAL, must not repeat after every batch).
const SIZE_RECHECK: Duration = Duration::from_secs(1);

enum Msg {
    /// Boxed so the channel's preallocated slots stay small (a Record is several hundred
    /// bytes; the queue holds tens of thousands).
    Record(Instant, Box<Record>),
    Flush(SyncSender<Result<(), String>>),
}

/// The pipeline's handle on the store. Cheap to clone; all clones feed one writer thread.
#[derive(Clone)]
pub struct StoreWriter {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    path: PathBuf,
    recovered: Option<Recovery>,
}

impl Store {
    /// Open the store (see [`Store::open`]; blocking, it runs `quick_check`) and start its
    /// writer thread. The thread ends after [`StoreWriter::shutdown`] or once every
    /// `StoreWriter` is dropped, having committed everything it accepted; the handle returns
    /// the result of the final checkpoint and close.
    pub fn spawn_writer(
        cfg: StoreConfig,
    ) -> Result<(StoreWriter, JoinHandle<Result<(), StoreError>>), StoreError> {
        let store = Store::open(&cfg)?;
        let (tx, rx) = sync_channel(cfg.channel_capacity);
        let shared = Arc::new(Shared::default());
        shared.publish(&store);
        let writer = StoreWriter {
            tx,
            shared: shared.clone(),
            path: cfg.path.clone(),
            recovered: store.recovered().cloned(),
        };
        let worker = Worker {
            batch: Vec::with_capacity(cfg.batch_size),
            first_enqueued: None,
            retention: None,
            // Right away: the agent may have been down for longer than max_age.
            next_retention: Instant::now(),
            last_run_end: None,
            store,
            rx,
            shared,
            cfg,
        };
        let handle = std::thread::Builder::new()
            .name("fathom-store".into())
            .spawn(move || worker.run())
            .map_err(StoreError::Spawn)?;
        Ok((writer, handle))
    }
}

impl StoreWriter {
    /// Queue a record for the store; never blocks. False: dropped (queue full or writer
    /// stopped), and counted.
    pub fn try_record(&self, record: Record) -> bool {
        if self.shared.stop.load(Ordering::Relaxed) {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        // Counted before sending so the writer's decrement can never come first.
        self.shared.pending.fetch_add(1, Ordering::Relaxed);
        match self
            .tx
            .try_send(Msg::Record(Instant::now(), Box::new(record)))
        {
            Ok(()) => true,
            Err(_) => {
                self.shared.pending.fetch_sub(1, Ordering::Relaxed);
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    pub fn stats(&self) -> StoreStats {
        self.shared.snapshot()
    }

    /// Wait until everything queued before this call is committed. Blocks (also on a full
    /// queue): for shutdown paths and tests, not for the pipeline.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (ack_tx, ack_rx) = sync_channel(1);
        self.tx
            .send(Msg::Flush(ack_tx))
            .map_err(|_| StoreError::WriterGone)?;
        match ack_rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(StoreError::BatchFailed(msg)),
            Err(_) => Err(StoreError::WriterGone),
        }
    }

    /// Ask the writer to commit what it has accepted and stop; records offered afterwards are
    /// dropped. Join the thread's handle to wait for it.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }

    /// A query handle on the same database (its own connection; WAL lets it read while the
    /// writer writes).
    pub fn reader(&self) -> Result<StoreReader, StoreError> {
        StoreReader::open(&self.path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Set when the file found at start-up was unusable and was moved aside.
    pub fn recovered(&self) -> Option<&Recovery> {
        self.recovered.as_ref()
    }
}

struct Worker {
    store: Store,
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    cfg: StoreConfig,
    batch: Vec<Record>,
    /// When the batch's first record was offered: the batch's age and the lag both count
    /// from there.
    first_enqueued: Option<Instant>,
    retention: Option<RetentionRun>,
    next_retention: Instant,
    last_run_end: Option<Instant>,
}

impl Worker {
    fn run(mut self) -> Result<(), StoreError> {
        loop {
            let wait = self.wait(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(m) => self.handle(m),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            // Take what is already queued, up to a full batch, without waiting.
            while self.batch.len() < self.cfg.batch_size {
                match self.rx.try_recv() {
                    Ok(m) => self.handle(m),
                    Err(_) => break,
                }
            }
            if self.batch.len() >= self.cfg.batch_size || self.batch_due(Instant::now()) {
                let _ = self.flush();
            }
            if self.shared.stop.load(Ordering::Relaxed) {
                self.drain();
                break;
            }
            self.retention_step();
        }
        let _ = self.flush();
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.publish(&self.store);
        self.store.close()
    }

    /// How long to wait for the next record: until the batch is due, retention is due or the
    /// stop flag should be looked at; not at all while a retention run has steps left.
    fn wait(&self, now: Instant) -> Duration {
        if self.retention.is_some() {
            return Duration::ZERO;
        }
        let mut until = (now + STOP_POLL).min(self.next_retention);
        if let Some(first) = self.first_enqueued {
            until = until.min(first + self.cfg.batch_age);
        }
        until.saturating_duration_since(now)
    }

    fn batch_due(&self, now: Instant) -> bool {
        self.first_enqueued
            .is_some_and(|first| now.duration_since(first) >= self.cfg.batch_age)
    }

    fn handle(&mut self, m: Msg) {
        match m {
            Msg::Record(at, r) => {
                if self.batch.is_empty() {
                    self.first_enqueued = Some(at);
                }
                self.batch.push(*r);
                if self.batch.len() >= self.cfg.batch_size {
                    let _ = self.flush();
                }
            }
            Msg::Flush(ack) => {
                let r = self.flush().map_err(|e| e.to_string());
                let _ = ack.send(r);
            }
        }
    }

    /// Everything still queued, after a stop request.
    fn drain(&mut self) {
        while let Ok(m) = self.rx.try_recv() {
            self.handle(m);
        }
        let _ = self.flush();
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let n = self.batch.len() as u64;
        let started = Instant::now();
        let result = self.store.insert(&self.batch);
        let now = Instant::now();
        match &result {
            Ok(()) => {
                let lag = self
                    .first_enqueued
                    .map_or(Duration::ZERO, |f| now.duration_since(f));
                self.shared.batch_done(n, now.duration_since(started), lag);
            }
            Err(e) => {
                let before = self.shared.failed.fetch_add(n, Ordering::Relaxed);
                // The first failure and then one line per ~10k lost records: a broken disk
                // must not also flood the log.
                if before == 0 || (before + n) / 10_000 != before / 10_000 {
                    tracing::warn!(
                        path = %self.store.path().display(),
                        error = %e,
                        records = n,
                        failed_total = before + n,
                        "store batch failed; its records are lost"
                    );
                }
            }
        }
        self.shared.pending.fetch_sub(n, Ordering::Relaxed);
        self.batch.clear();
        self.first_enqueued = None;
        self.shared.publish(&self.store);
        // Over the size budget: start retention now rather than at the next interval.
        // A run that ended less than SIZE_RECHECK ago defers the next one to that point
        // instead of skipping it: the last batch of a burst may be the one over budget.
        if self.retention.is_none() && self.store.file_bytes() > self.cfg.max_bytes {
            let due = self.last_run_end.map_or(now, |t| t + SIZE_RECHECK);
            self.next_retention = self.next_retention.min(due);
        }
        result
    }

    /// One retention step if a run is under way or due.
    fn retention_step(&mut self) {
        let now = Instant::now();
        if self.retention.is_none() && now >= self.next_retention {
            self.retention = Some(RetentionRun::new(Timestamp::now(), &self.cfg));
        }
        let Some(run) = self.retention.as_mut() else {
            return;
        };
        let finished = match run.step(&mut self.store) {
            Ok(true) => return,
            Ok(false) => {
                let report = run.report();
                if report.deleted() > 0 || report.pages_released > 0 {
                    tracing::debug!(
                        path = %self.store.path().display(),
                        by_age = report.deleted_by_age,
                        by_size = report.deleted_by_size,
                        pages_released = report.pages_released,
                        "store retention"
                    );
                }
                self.shared
                    .retention_deleted
                    .fetch_add(report.deleted(), Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(e),
        };
        if let Err(e) = finished {
            tracing::warn!(path = %self.store.path().display(), error = %e, "store retention failed; retrying at the next interval");
        }
        self.retention = None;
        let end = Instant::now();
        self.last_run_end = Some(end);
        self.next_retention = end + self.cfg.retention_interval;
        self.shared.publish(&self.store);
    }
}
