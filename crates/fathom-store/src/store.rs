//! `Store`: one open database. Inserting batches, querying, retention and counters; the
//! background writer (`writer.rs`) owns one of these.

use std::cell::RefCell;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use fathom_model::{FlowFilter, Record, Timestamp};
use rusqlite::{params, Connection};

use crate::codec;
use crate::columns::{columns, ip_key, time_from_sql};
use crate::config::StoreConfig;
use crate::endpoints::{EndpointIds, EndpointIndex};
use crate::error::{SqlContext, StoreError};
use crate::query::{self, TimeRange};
use crate::recovery::{self, sibling, Recovery};
use crate::retention::{RetentionReport, RetentionRun};
use crate::schema::SchemaState;

pub struct Store {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
    pub(crate) cfg: StoreConfig,
    pub(crate) ids: EndpointIds,
    index: RefCell<EndpointIndex>,
    pub(crate) rows: u64,
    pub(crate) oldest: Option<i64>,
    pub(crate) newest: Option<i64>,
    schema: SchemaState,
    recovered: Option<Recovery>,
}

impl Store {
    /// Open the store at `cfg.path`, creating its directory and the database as needed. An
    /// unusable file is moved aside and replaced (see `recovered`). Runs `PRAGMA
    /// quick_check`, which reads the whole file: call from a blocking context.
    pub fn open(cfg: &StoreConfig) -> Result<Store, StoreError> {
        cfg.validate()?;
        let (conn, schema, recovered) = recovery::open(&cfg.path, cfg.max_bytes)?;
        let path = cfg.path.clone();
        let (rows, oldest, newest): (i64, Option<i64>, Option<i64>) = conn
            .query_row(
                "SELECT count(*), min(time), max(time) FROM records",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .ctx(&path)?;
        Ok(Store {
            conn,
            path,
            cfg: cfg.clone(),
            ids: EndpointIds::default(),
            index: RefCell::new(EndpointIndex::default()),
            rows: u64::try_from(rows).unwrap_or(0),
            oldest,
            newest,
            schema,
            recovered,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Set when the file found at start-up was unusable and has been moved aside.
    pub fn recovered(&self) -> Option<&Recovery> {
        self.recovered.as_ref()
    }

    /// Whether the database was created, found current or migrated on open.
    pub fn schema_state(&self) -> &SchemaState {
        &self.schema
    }

    /// Write `records` in one transaction: all of them or, on error, none.
    pub fn insert(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let result = self.insert_tx(records);
        if result.is_err() {
            // Endpoint ids handed out inside the rolled-back transaction do not exist.
            self.ids.clear();
        }
        result
    }

    fn insert_tx(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().ctx(&path)?;
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO records (time, type, event, protocol, src_ip, dst_ip, src_port,
                     dst_port, src_ep, dst_ep, src_comm, dst_comm, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )
                .ctx(&path)?;
            for r in records {
                let c = columns(r);
                let body = codec::encode(r)?;
                let src_ep = match c.src {
                    Some(ep) => self.ids.id(&tx, &path, ep)?,
                    None => None,
                };
                let dst_ep = match c.dst {
                    Some(ep) => self.ids.id(&tx, &path, ep)?,
                    None => None,
                };
                stmt.execute(params![
                    c.time,
                    c.kind,
                    c.event,
                    c.protocol,
                    c.src.map(|e| ip_key(e.ip)),
                    c.dst.map(|e| ip_key(e.ip)),
                    c.src.map(|e| e.port),
                    c.dst.map(|e| e.port),
                    src_ep,
                    dst_ep,
                    c.src_comm,
                    c.dst_comm,
                    body,
                ])
                .ctx(&path)?;
                lo = lo.min(c.time);
                hi = hi.max(c.time);
            }
        }
        tx.commit().ctx(&path)?;
        if !records.is_empty() {
            self.rows += records.len() as u64;
            self.oldest = Some(self.oldest.map_or(lo, |o| o.min(lo)));
            self.newest = Some(self.newest.map_or(hi, |n| n.max(hi)));
        }
        Ok(())
    }

    /// Records matching `filter` with `since <= time <= until`, in time order; with `last`,
    /// only the newest `last` of them (still oldest first). Same answers as applying
    /// `FlowFilter::matches` to the records one by one.
    pub fn query(
        &self,
        filter: &FlowFilter,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        last: Option<usize>,
    ) -> Result<Vec<Record>, StoreError> {
        let mut index = self.index.borrow_mut();
        query::run(
            &self.conn,
            &self.path,
            &mut index,
            filter,
            TimeRange { since, until },
            last,
        )
    }

    /// Stream matching records in time order to `visit` until it returns `Break`, without
    /// collecting them: for long ranges (`observe --since 7d`) sent on as they are read.
    pub fn query_each(
        &self,
        filter: &FlowFilter,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        visit: impl FnMut(Record) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let mut index = self.index.borrow_mut();
        query::scan(
            &self.conn,
            &self.path,
            &mut index,
            filter,
            TimeRange { since, until },
            false,
            visit,
        )
    }

    /// SQLite's plan for a query (`EXPLAIN QUERY PLAN` details), for diagnosis.
    pub fn explain(
        &self,
        filter: &FlowFilter,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        last: Option<usize>,
    ) -> Result<Vec<String>, StoreError> {
        let mut index = self.index.borrow_mut();
        query::explain(
            &self.conn,
            &self.path,
            &mut index,
            filter,
            TimeRange { since, until },
            last,
        )
    }

    /// Run retention to completion as of `now` (the writer does the same in steps between
    /// batches; this is for tools and tests).
    pub fn enforce_retention(&mut self, now: Timestamp) -> Result<RetentionReport, StoreError> {
        let mut run = RetentionRun::new(now, &self.cfg);
        while run.step(self)? {}
        Ok(run.into_report())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Times of the oldest and newest stored records.
    pub fn time_range(&self) -> (Option<Timestamp>, Option<Timestamp>) {
        (
            self.oldest.map(time_from_sql),
            self.newest.map(time_from_sql),
        )
    }

    /// Bytes on disk: the database plus its WAL.
    pub fn file_bytes(&self) -> u64 {
        file_bytes(&self.path)
    }

    /// Re-read the oldest time after deletions (index lookup).
    pub(crate) fn refresh_oldest(&mut self) -> Result<(), StoreError> {
        self.oldest = self
            .conn
            .query_row("SELECT min(time) FROM records", [], |r| r.get(0))
            .ctx(&self.path)?;
        if self.oldest.is_none() {
            self.newest = None;
        }
        Ok(())
    }

    /// Fold the WAL into the database and truncate it, refresh the planner's statistics,
    /// and close. Dropping a `Store` also closes it, just without these niceties.
    pub fn close(self) -> Result<(), StoreError> {
        let path = self.path.clone();
        // A reader still open elsewhere can keep the WAL from being truncated; not an error.
        let _: (i64, i64, i64) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .ctx(&path)?;
        self.conn.execute_batch("PRAGMA optimize").ctx(&path)?;
        self.conn
            .close()
            .map_err(|(_, source)| StoreError::Sqlite { path, source })
    }
}

pub(crate) fn file_bytes(path: &Path) -> u64 {
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    len(path) + len(&sibling(path, "-wal"))
}

/// A query-only handle on a store another `Store` (usually the writer) keeps up to date.
/// `Sync`: share it behind an `Arc`; queries from several threads take turns.
pub struct StoreReader {
    path: PathBuf,
    inner: std::sync::Mutex<(Connection, EndpointIndex)>,
}

impl StoreReader {
    /// Open an existing store for queries. Never creates, recovers or writes anything.
    pub fn open(path: impl Into<PathBuf>) -> Result<StoreReader, StoreError> {
        let path = path.into();
        let conn = recovery::open_reader(&path)?;
        Ok(StoreReader {
            path,
            inner: std::sync::Mutex::new((conn, EndpointIndex::default())),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// See [`Store::query`].
    pub fn query(
        &self,
        filter: &FlowFilter,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        last: Option<usize>,
    ) -> Result<Vec<Record>, StoreError> {
        // A panic mid-query leaves nothing half-done in a read connection: keep going.
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (conn, index) = &mut *guard;
        query::run(
            conn,
            &self.path,
            index,
            filter,
            TimeRange { since, until },
            last,
        )
    }

    /// See [`Store::query_each`]. Other queries on this reader wait until it returns; open a
    /// second reader for concurrent long scans.
    pub fn query_each(
        &self,
        filter: &FlowFilter,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        visit: impl FnMut(Record) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (conn, index) = &mut *guard;
        query::scan(
            conn,
            &self.path,
            index,
            filter,
            TimeRange { since, until },
            false,
            visit,
        )
    }
}
