//! Store settings. Defaults follow issue 6: days of history (7 days or 1 GiB, whichever comes
//! first), batches of 1000 records or 200 ms, retention checked every minute.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::StoreError;

pub const DEFAULT_PATH: &str = "/var/lib/fathom/flows.db";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The database file; its directory is created. `-wal`/`-shm` files live next to it.
    pub path: PathBuf,
    /// Records older than this (by their own `time`) are deleted.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Upper bound for the database and its WAL on disk, in bytes.
    pub max_bytes: u64,
    /// A batch is committed when it holds this many records…
    pub batch_size: usize,
    /// …or when its first record is this old.
    #[serde(with = "humantime_serde")]
    pub batch_age: Duration,
    /// Records queued between the pipeline and the writer thread; beyond this they are
    /// dropped and counted, never waited for.
    pub channel_capacity: usize,
    /// How often age retention runs. Size retention also starts as soon as a batch takes the
    /// files over `max_bytes`.
    #[serde(with = "humantime_serde")]
    pub retention_interval: Duration,
    /// Rows deleted per retention step (one short transaction each).
    pub retention_chunk: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from(DEFAULT_PATH),
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
            batch_size: 1000,
            batch_age: Duration::from_millis(200),
            channel_capacity: 65536,
            retention_interval: Duration::from_secs(60),
            retention_chunk: 5000,
        }
    }
}

/// An empty store is ~200 KiB (a 16 KiB root page per table and index); below this there
/// would be no room left for records.
pub const MIN_MAX_BYTES: u64 = 1 << 20;

impl StoreConfig {
    /// A default configuration for the database at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            ..Default::default()
        }
    }

    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |m: &str| Err(StoreError::Config(m.to_string()));
        if self.path.as_os_str().is_empty() {
            return bad("path is empty");
        }
        if self.max_bytes < MIN_MAX_BYTES {
            return bad(&format!("max_bytes must be at least {MIN_MAX_BYTES}"));
        }
        if self.max_age.is_zero() {
            return bad("max_age must be positive");
        }
        if self.batch_size == 0 || self.channel_capacity == 0 || self.retention_chunk == 0 {
            return bad("batch_size, channel_capacity and retention_chunk must be positive");
        }
        if self.batch_age.is_zero() || self.retention_interval.is_zero() {
            return bad("batch_age and retention_interval must be positive");
        }
        Ok(())
    }
}
