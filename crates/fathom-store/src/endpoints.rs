//! The `endpoints` dictionary: each distinct (namespace, pod, labels) once, rows point at it.
//! The writer maps endpoints to ids (`EndpointIds`, with a cache so the common case is a hash
//! lookup); readers keep a copy of the table (`EndpointIndex`) to evaluate pod and label
//! selectors with fathom-model's matchers.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use fathom_model::Endpoint;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{SqlContext, StoreError};

/// Beyond this many cached ids the cache starts over (pods churn; ids stay valid in the DB).
const CACHE_LIMIT: usize = 200_000;

fn key(ep: &Endpoint) -> Option<Result<String, serde_json::Error>> {
    if ep.namespace.is_none() && ep.pod.is_none() && ep.labels.is_empty() {
        return None;
    }
    Some(serde_json::to_string(&(&ep.namespace, &ep.pod, &ep.labels)))
}

#[derive(Default)]
pub(crate) struct EndpointIds {
    cache: HashMap<String, i64>,
}

impl EndpointIds {
    /// The id of `ep`'s description, inserting it if new. None: nothing to describe.
    /// Must run inside the batch's transaction; if that rolls back, call `clear`.
    pub fn id(
        &mut self,
        conn: &Connection,
        path: &Path,
        ep: &Endpoint,
    ) -> Result<Option<i64>, StoreError> {
        let Some(k) = key(ep) else {
            return Ok(None);
        };
        let k = k?;
        if let Some(id) = self.cache.get(&k) {
            return Ok(Some(*id));
        }
        let found: Option<i64> = conn
            .prepare_cached("SELECT id FROM endpoints WHERE key = ?1")
            .and_then(|mut s| s.query_row([&k], |r| r.get(0)).optional())
            .ctx(path)?;
        let id = match found {
            Some(id) => id,
            None => {
                let labels = serde_json::to_string(&ep.labels)?;
                conn.prepare_cached(
                    "INSERT INTO endpoints (key, namespace, pod, labels) VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| s.execute(params![k, ep.namespace, ep.pod, labels]))
                .ctx(path)?;
                conn.last_insert_rowid()
            }
        };
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(k, id);
        Ok(Some(id))
    }

    /// Forget every id: after a rollback (ids handed out may not exist) or after retention
    /// removed unused descriptions.
    pub fn clear(&mut self) {
        self.cache.clear();
    }
}

/// A reader's copy of `endpoints`. Ids are never reused (AUTOINCREMENT), so refreshing only
/// needs the rows above the highest id seen; entries deleted by retention linger harmlessly
/// until the copy is rebuilt.
#[derive(Default)]
pub(crate) struct EndpointIndex {
    entries: Vec<(i64, Endpoint)>,
    max_id: i64,
}

impl EndpointIndex {
    pub fn refresh(&mut self, conn: &Connection, path: &Path) -> Result<(), StoreError> {
        let live: i64 = conn
            .query_row("SELECT count(*) FROM endpoints", [], |r| r.get(0))
            .ctx(path)?;
        // Mostly stale (retention removed many): start over rather than grow forever.
        if usize::try_from(live).unwrap_or(0) < self.entries.len() / 2 {
            *self = EndpointIndex::default();
        }
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, namespace, pod, labels FROM endpoints WHERE id > ?1 ORDER BY id",
            )
            .ctx(path)?;
        let mut rows = stmt.query([self.max_id]).ctx(path)?;
        while let Some(row) = rows.next().ctx(path)? {
            let id: i64 = row.get(0).ctx(path)?;
            let namespace: Option<String> = row.get(1).ctx(path)?;
            let pod: Option<String> = row.get(2).ctx(path)?;
            let labels: String = row.get(3).ctx(path)?;
            let labels: BTreeMap<String, String> =
                serde_json::from_str(&labels).map_err(|e| StoreError::BadRow {
                    path: path.to_path_buf(),
                    table: "endpoints",
                    id,
                    reason: e.to_string(),
                })?;
            let ep = Endpoint {
                // Selectors look at pod, namespace and labels only.
                ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port: 0,
                pod,
                namespace,
                labels,
            };
            self.entries.push((id, ep));
            self.max_id = self.max_id.max(id);
        }
        Ok(())
    }

    /// Ids of the descriptions `pred` accepts. `pred` gets `&mut` so it can lend the
    /// endpoint to a probe record without cloning it (it must put it back).
    pub fn matching(&mut self, mut pred: impl FnMut(&mut Endpoint) -> bool) -> Vec<i64> {
        self.entries
            .iter_mut()
            .filter_map(|(id, ep)| pred(ep).then_some(*id))
            .collect()
    }
}
