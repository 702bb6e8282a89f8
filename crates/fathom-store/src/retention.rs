//! Retention: delete by age, then by size, then give the space back to the file system.
//!
//! Strategy (why it looks like this):
//! - **Small steps.** A run is a sequence of steps, each one short transaction that deletes at
//!   most `retention_chunk` rows (oldest first, via the time index). The writer thread runs one
//!   step between batches, so retention never holds the write lock for long and never stalls
//!   ingestion by more than a step; readers are never blocked at all (WAL).
//! - **Age** deletes rows whose own `time` is older than `now - max_age`.
//! - **Size** measures the pages in use (`page_count - freelist_count`) and deletes the oldest
//!   rows until they fit in 90% of `max_bytes` (the rest is headroom for the WAL and for the
//!   next minute of records, so size retention does not run after every batch). Rows per step
//!   come from the average row size and are re-measured after each step, since freed index
//!   space does not shrink exactly in proportion.
//! - **Unused endpoint descriptions** (pods/labels no row points at any more) are removed in
//!   id windows, so the dictionary does not grow with every pod that ever existed.
//! - **Shrinking.** Deleting only puts pages on SQLite's freelist. The database uses
//!   `auto_vacuum=INCREMENTAL`, so `PRAGMA incremental_vacuum(n)` moves live pages from the
//!   end into the holes and truncates, n pages at a time; a `wal_checkpoint(TRUNCATE)` then
//!   writes that to the main file and empties the WAL. This is done after size deletions,
//!   when the files are over `max_bytes`, or when more than 1/8 of the file is free (traffic
//!   fell); otherwise free pages are simply reused by new rows, which costs no extra I/O in the
//!   steady state where each minute's deletions make room for the next minute's inserts.

use fathom_model::Timestamp;

use crate::columns::time_to_sql;
use crate::config::StoreConfig;
use crate::error::{SqlContext, StoreError};
use crate::store::Store;

/// Bytes released per vacuum step.
const VACUUM_STEP_BYTES: u64 = 16 << 20;
/// Endpoint descriptions examined per clean-up step.
const GC_WINDOW: i64 = 2000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub deleted_by_age: u64,
    pub deleted_by_size: u64,
    pub endpoints_removed: u64,
    /// Pages handed back to the file system by incremental vacuum.
    pub pages_released: u64,
    pub steps: u64,
}

impl RetentionReport {
    pub fn deleted(&self) -> u64 {
        self.deleted_by_age + self.deleted_by_size
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Age,
    Size,
    Gc { after: i64 },
    Vacuum,
    Checkpoint,
    Done,
}

pub(crate) struct RetentionRun {
    phase: Phase,
    cutoff: i64,
    max_bytes: u64,
    chunk: usize,
    shrink: bool,
    report: RetentionReport,
}

struct Pages {
    size: u64,
    count: u64,
    free: u64,
}

fn pages(store: &Store) -> Result<Pages, StoreError> {
    let get = |p: &str| -> Result<u64, StoreError> {
        let v: i64 = store
            .conn
            .query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
            .ctx(&store.path)?;
        Ok(u64::try_from(v).unwrap_or(0))
    };
    Ok(Pages {
        size: get("page_size")?,
        count: get("page_count")?,
        free: get("freelist_count")?,
    })
}

impl RetentionRun {
    pub fn new(now: Timestamp, cfg: &StoreConfig) -> Self {
        let max_age = i64::try_from(cfg.max_age.as_nanos()).unwrap_or(i64::MAX);
        RetentionRun {
            phase: Phase::Age,
            cutoff: time_to_sql(now).saturating_sub(max_age),
            max_bytes: cfg.max_bytes,
            chunk: cfg.retention_chunk,
            shrink: false,
            report: RetentionReport::default(),
        }
    }

    pub fn report(&self) -> &RetentionReport {
        &self.report
    }

    pub fn into_report(self) -> RetentionReport {
        self.report
    }

    /// Do one bounded piece of work. Ok(false): the run is complete.
    pub fn step(&mut self, store: &mut Store) -> Result<bool, StoreError> {
        self.report.steps += 1;
        let chunk = i64::try_from(self.chunk).unwrap_or(i64::MAX);
        match self.phase {
            Phase::Age => {
                let n = delete_oldest(store, Some(self.cutoff), chunk)?;
                self.report.deleted_by_age += n;
                if n < self.chunk as u64 {
                    self.phase = Phase::Size;
                }
            }
            Phase::Size => {
                let p = pages(store)?;
                let used = p.count.saturating_sub(p.free) * p.size;
                let low_water = self.max_bytes / 10 * 9;
                if used <= low_water || store.rows == 0 {
                    self.phase = Phase::Gc { after: 0 };
                } else {
                    let per_row = (used / store.rows.max(1)).max(1);
                    let want = (used - low_water).div_ceil(per_row);
                    let n = want.clamp(1, self.chunk as u64);
                    let n = delete_oldest(store, None, i64::try_from(n).unwrap_or(chunk))?;
                    self.report.deleted_by_size += n;
                    self.shrink = true;
                    if n == 0 {
                        self.phase = Phase::Gc { after: 0 };
                    }
                }
            }
            Phase::Gc { after } => {
                if self.report.deleted() == 0 {
                    self.phase = Phase::Vacuum;
                } else {
                    let (removed, next) = gc_endpoints(store, after)?;
                    self.report.endpoints_removed += removed;
                    self.phase = match next {
                        Some(after) => Phase::Gc { after },
                        None => Phase::Vacuum,
                    };
                }
            }
            Phase::Vacuum => {
                let p = pages(store)?;
                let file = store.file_bytes();
                let wanted = self.shrink
                    || file > self.max_bytes
                    || p.free * p.size > (p.count * p.size) / 8;
                if !wanted || p.free == 0 {
                    self.phase = Phase::Checkpoint;
                } else {
                    incremental_vacuum(store, p.free.min(VACUUM_STEP_BYTES / p.size.max(512)))?;
                    let released = p.free.saturating_sub(pages(store)?.free);
                    self.report.pages_released += released;
                    self.shrink = true;
                    if released == 0 {
                        self.phase = Phase::Checkpoint;
                    }
                }
            }
            Phase::Checkpoint => {
                if self.shrink || self.report.deleted() > 0 {
                    // Busy (a reader holds an old snapshot) only means the WAL shrinks later.
                    let _: (i64, i64, i64) = store
                        .conn
                        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })
                        .ctx(&store.path)?;
                }
                if self.report.deleted() > 0 {
                    store.refresh_oldest()?;
                }
                // Keep the planner's statistics in step with the data; a no-op unless they
                // drifted, and bounded by analysis_limit when not.
                store
                    .conn
                    .execute_batch("PRAGMA optimize")
                    .ctx(&store.path)?;
                self.phase = Phase::Done;
            }
            Phase::Done => return Ok(false),
        }
        Ok(self.phase != Phase::Done)
    }
}

/// Delete up to `limit` of the oldest rows (older than `before`, when given).
fn delete_oldest(store: &mut Store, before: Option<i64>, limit: i64) -> Result<u64, StoreError> {
    let n = match before {
        Some(cutoff) => store.conn.execute(
            "DELETE FROM records WHERE id IN
                (SELECT id FROM records WHERE time < ?1 ORDER BY time LIMIT ?2)",
            [cutoff, limit],
        ),
        None => store.conn.execute(
            "DELETE FROM records WHERE id IN
                (SELECT id FROM records ORDER BY time LIMIT ?1)",
            [limit],
        ),
    }
    .ctx(&store.path)? as u64;
    store.rows = store.rows.saturating_sub(n);
    Ok(n)
}

/// Remove endpoint descriptions no row refers to among the next window of ids. Returns the
/// count removed and where the next window starts (None: done).
fn gc_endpoints(store: &mut Store, after: i64) -> Result<(u64, Option<i64>), StoreError> {
    let last: Option<i64> = store
        .conn
        .query_row(
            "SELECT max(id) FROM (SELECT id FROM endpoints WHERE id > ?1 ORDER BY id LIMIT ?2)",
            [after, GC_WINDOW],
            |r| r.get(0),
        )
        .ctx(&store.path)?;
    let Some(last) = last else {
        return Ok((0, None));
    };
    let removed = store
        .conn
        .execute(
            "DELETE FROM endpoints WHERE id > ?1 AND id <= ?2
               AND NOT EXISTS (SELECT 1 FROM records WHERE src_ep = endpoints.id)
               AND NOT EXISTS (SELECT 1 FROM records WHERE dst_ep = endpoints.id)",
            [after, last],
        )
        .ctx(&store.path)? as u64;
    if removed > 0 {
        // The writer's cache may hold ids that are gone now.
        store.ids.clear();
    }
    Ok((removed, Some(last)))
}

/// `PRAGMA incremental_vacuum(n)` works page by page between result rows, so it has to be
/// stepped to the end (`execute_batch` steps once and would release a single page).
fn incremental_vacuum(store: &Store, n: u64) -> Result<(), StoreError> {
    let mut stmt = store
        .conn
        .prepare(&format!("PRAGMA incremental_vacuum({n})"))
        .ctx(&store.path)?;
    let mut rows = stmt.query([]).ctx(&store.path)?;
    while rows.next().ctx(&store.path)?.is_some() {}
    Ok(())
}
