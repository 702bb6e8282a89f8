//! Counters the writer publishes and anyone holding a `StoreWriter` can read without
//! touching the database or waiting for the writer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use fathom_model::Timestamp;
use serde::Serialize;

use crate::store::Store;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StoreStats {
    /// Records committed to the database.
    pub written: u64,
    /// Records refused by `try_record`: the queue was full or the writer had stopped.
    pub dropped: u64,
    /// Records accepted but lost because their batch failed to commit (logged).
    pub failed: u64,
    /// Batches committed.
    pub batches: u64,
    /// Time to encode and commit the last batch.
    pub last_batch_ms: f64,
    /// Rows in the database.
    pub rows: u64,
    /// Database plus WAL on disk.
    pub file_bytes: u64,
    /// Times of the oldest and newest stored records.
    pub oldest: Option<Timestamp>,
    pub newest: Option<Timestamp>,
    /// How long the oldest record of the last batch waited between `try_record` and its
    /// commit: about `batch_age` when the writer keeps up, growing when it falls behind.
    pub lag: Duration,
    /// Records accepted and not yet committed.
    pub pending: u64,
    /// Rows deleted by retention since start.
    pub retention_deleted: u64,
}

#[derive(Default)]
pub(crate) struct Shared {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
    pub batches: AtomicU64,
    pub last_batch_us: AtomicU64,
    pub lag_us: AtomicU64,
    pub rows: AtomicU64,
    pub file_bytes: AtomicU64,
    pub pending: AtomicU64,
    pub retention_deleted: AtomicU64,
    /// Written once per batch, read by `stats`; never touched on the record path.
    pub range: Mutex<(Option<Timestamp>, Option<Timestamp>)>,
    /// Set by `StoreWriter::shutdown` and when the writer thread exits.
    pub stop: AtomicBool,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Shared {
    /// Copy what the store knows about itself.
    pub fn publish(&self, store: &Store) {
        self.rows.store(store.rows(), Ordering::Relaxed);
        self.file_bytes.store(store.file_bytes(), Ordering::Relaxed);
        if let Ok(mut r) = self.range.lock() {
            *r = store.time_range();
        }
    }

    pub fn batch_done(&self, n: u64, took: Duration, lag: Duration) {
        self.written.fetch_add(n, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.last_batch_us.store(micros(took), Ordering::Relaxed);
        self.lag_us.store(micros(lag), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StoreStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (oldest, newest) = self.range.lock().map(|r| *r).unwrap_or((None, None));
        StoreStats {
            written: get(&self.written),
            dropped: get(&self.dropped),
            failed: get(&self.failed),
            batches: get(&self.batches),
            last_batch_ms: get(&self.last_batch_us) as f64 / 1000.0,
            rows: get(&self.rows),
            file_bytes: get(&self.file_bytes),
            oldest,
            newest,
            lag: Duration::from_micros(get(&self.lag_us)),
            pending: get(&self.pending),
            retention_deleted: get(&self.retention_deleted),
        }
    }
}
