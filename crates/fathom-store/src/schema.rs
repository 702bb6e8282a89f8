//! The on-disk layout, its version and the migration hook.
//!
//! One `records` table holds every record kind: a `type` column names the kind and `body`
//! keeps the whole record as JSON (so a new field in `fathom-model` needs no migration, and
//! `sqlite3 flows.db "select json_extract(body,'$.l4.protocol') …"` works for a human). The
//! other columns exist only to be filtered on; they are NULL where a kind has no such thing.
//! A new record kind is a new `type` value plus its column extraction in `columns.rs`; kind-
//! specific indexed fields (an L7 status, a policy verdict) would go in a side table keyed by
//! `records.id`, which is a migration, not a rewrite.
//!
//! Pods and labels are not repeated on every row: an endpoint's (namespace, pod, labels)
//! is stored once in `endpoints` and rows point at it (`src_ep`, `dst_ep`). That is compact,
//! and it lets the query side evaluate pod and label selectors with `fathom-model`'s own
//! matchers over that small table, then push `src_ep IN (…)` down to an index.

use rusqlite::{Connection, Transaction};

/// `PRAGMA user_version` of the layout this build writes.
pub const SCHEMA_VERSION: u32 = 1;
/// `PRAGMA application_id`: "FTHM". Tells our database from any other SQLite file.
pub const APPLICATION_ID: i32 = 0x4654_484D;

const CREATE_V1: &str = "
CREATE TABLE endpoints (
    -- AUTOINCREMENT: an id is never reused after retention deletes it, so a reader's cached
    -- copy of this table can never attach an old id to a new endpoint.
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    -- JSON of [namespace, pod, labels]: one row per distinct endpoint description (NULLs
    -- would defeat a UNIQUE constraint on the separate columns).
    key       TEXT NOT NULL UNIQUE,
    namespace TEXT,
    pod       TEXT,
    labels    TEXT NOT NULL
);

CREATE TABLE records (
    id        INTEGER PRIMARY KEY,   -- insertion order; breaks ties between equal times
    time      INTEGER NOT NULL,      -- the record's own time, ns since the Unix epoch
    type      TEXT NOT NULL,         -- 'flow', 'l7', … (Record::type_name)
    event     TEXT,                  -- flow event (start/update/end); NULL for other kinds
    protocol  INTEGER,               -- IP protocol number; NULL when the kind has none
    src_ip    BLOB,                  -- family byte (4|6) + address bytes: ranges compare bytewise
    dst_ip    BLOB,
    src_port  INTEGER,
    dst_port  INTEGER,
    src_ep    INTEGER,               -- endpoints.id; NULL: no pod, namespace or labels
    dst_ep    INTEGER,
    src_comm  TEXT,                  -- process command name on each side, when known
    dst_comm  TEXT,
    body      TEXT NOT NULL          -- the complete record as fathom-model JSON
);

-- Every index carries time so a selective filter plus a time window is one range scan.
CREATE INDEX records_time     ON records(time);
CREATE INDEX records_src_ep   ON records(src_ep, time) WHERE src_ep IS NOT NULL;
CREATE INDEX records_dst_ep   ON records(dst_ep, time) WHERE dst_ep IS NOT NULL;
CREATE INDEX records_src_ip   ON records(src_ip, time);
CREATE INDEX records_dst_ip   ON records(dst_ip, time);
CREATE INDEX records_src_port ON records(src_port, time);
CREATE INDEX records_dst_port ON records(dst_port, time);

-- For people with the sqlite3 shell: rows with readable times, pods and labels.
CREATE VIEW records_readable AS
SELECT r.id,
       strftime('%Y-%m-%dT%H:%M:%fZ', r.time / 1e9, 'unixepoch') AS time,
       r.type, r.event, r.protocol,
       r.src_port, r.dst_port,
       s.namespace AS src_namespace, s.pod AS src_pod, s.labels AS src_labels,
       d.namespace AS dst_namespace, d.pod AS dst_pod, d.labels AS dst_labels,
       r.src_comm, r.dst_comm,
       json_extract(r.body, '$.source.ip') AS src_ip,
       json_extract(r.body, '$.destination.ip') AS dst_ip,
       r.body
FROM records r
LEFT JOIN endpoints s ON s.id = r.src_ep
LEFT JOIN endpoints d ON d.id = r.dst_ep;
";

/// Every column the code reads or writes; preparing this proves the layout is what we expect
/// (a damaged or hand-edited schema fails here instead of on the first insert).
const PROBE: &str = "SELECT r.id, r.time, r.type, r.event, r.protocol, r.src_ip, r.dst_ip,
    r.src_port, r.dst_port, r.src_ep, r.dst_ep, r.src_comm, r.dst_comm, r.body,
    e.id, e.key, e.namespace, e.pod, e.labels
    FROM records r JOIN endpoints e ON e.id = r.src_ep LIMIT 0";

/// Takes the schema from version `from` to `from + 1`, inside the transaction that also
/// bumps `user_version`, so a crash mid-migration leaves the old version intact.
#[derive(Clone, Copy)]
pub struct Migration {
    pub from: u32,
    pub apply: fn(&Transaction) -> rusqlite::Result<()>,
}

/// The migration hook: append a `Migration { from: 1, … }` when version 2 arrives.
pub const MIGRATIONS: &[Migration] = &[];

/// What `prepare` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    Created,
    Current,
    Migrated {
        from: u32,
    },
    /// Not something this build can use; the caller moves the file aside.
    Unusable(String),
}

fn pragma_i64(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
}

/// Create the schema in an empty database, migrate an older one, or say why it is unusable.
pub fn prepare(conn: &mut Connection) -> rusqlite::Result<SchemaState> {
    prepare_with(conn, SCHEMA_VERSION, MIGRATIONS)
}

pub(crate) fn prepare_with(
    conn: &mut Connection,
    target: u32,
    migrations: &[Migration],
) -> rusqlite::Result<SchemaState> {
    let app_id = pragma_i64(conn, "application_id")?;
    let version = pragma_i64(conn, "user_version")?;
    let objects: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;

    if objects == 0 && version == 0 && app_id == 0 {
        let tx = conn.transaction()?;
        tx.execute_batch(CREATE_V1)?;
        tx.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 1;"
        ))?;
        let state = run_migrations(&tx, 1, target, migrations)?;
        tx.commit()?;
        return Ok(match state {
            Ok(_) => SchemaState::Created,
            Err(reason) => SchemaState::Unusable(reason),
        });
    }
    if app_id != i64::from(APPLICATION_ID) {
        return Ok(SchemaState::Unusable(format!(
            "not a Fathom store (application_id {app_id:#x}, {objects} schema objects)"
        )));
    }
    let Ok(version) = u32::try_from(version) else {
        return Ok(SchemaState::Unusable(format!(
            "bad schema version {version}"
        )));
    };
    if version > target {
        return Ok(SchemaState::Unusable(format!(
            "schema version {version} was written by a newer Fathom (this one knows {target})"
        )));
    }
    let state = if version < target {
        let tx = conn.transaction()?;
        match run_migrations(&tx, version, target, migrations)? {
            Ok(()) => {
                tx.commit()?;
                SchemaState::Migrated { from: version }
            }
            Err(reason) => return Ok(SchemaState::Unusable(reason)),
        }
    } else {
        SchemaState::Current
    };
    if let Err(e) = conn.prepare(PROBE) {
        return Ok(SchemaState::Unusable(format!(
            "schema version {version} but the tables do not match: {e}"
        )));
    }
    Ok(state)
}

/// Ok(Err(reason)) when there is no path from `from` to `target`.
fn run_migrations(
    tx: &Transaction,
    from: u32,
    target: u32,
    migrations: &[Migration],
) -> rusqlite::Result<Result<(), String>> {
    let mut v = from;
    while v < target {
        let Some(m) = migrations.iter().find(|m| m.from == v) else {
            return Ok(Err(format!(
                "no migration from schema version {v} (this build writes {target})"
            )));
        };
        (m.apply)(tx)?;
        v += 1;
        tx.execute_batch(&format!("PRAGMA user_version = {v}"))?;
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_database_gets_current_schema_and_ids() {
        let mut c = Connection::open_in_memory().unwrap();
        assert_eq!(prepare(&mut c).unwrap(), SchemaState::Created);
        assert_eq!(pragma_i64(&c, "user_version").unwrap(), 1);
        assert_eq!(
            pragma_i64(&c, "application_id").unwrap(),
            i64::from(APPLICATION_ID)
        );
        assert_eq!(prepare(&mut c).unwrap(), SchemaState::Current);
    }

    fn add_note(tx: &Transaction) -> rusqlite::Result<()> {
        tx.execute_batch("ALTER TABLE records ADD COLUMN note TEXT")
    }

    #[test]
    fn migration_hook_runs_in_order_and_bumps_version() {
        let mut c = Connection::open_in_memory().unwrap();
        prepare(&mut c).unwrap();
        let steps = [Migration {
            from: 1,
            apply: add_note,
        }];
        assert_eq!(
            prepare_with(&mut c, 2, &steps).unwrap(),
            SchemaState::Migrated { from: 1 }
        );
        assert_eq!(pragma_i64(&c, "user_version").unwrap(), 2);
        c.prepare("SELECT note FROM records").unwrap();
        // No path from 2 to 3: unusable, and nothing was changed.
        assert!(matches!(
            prepare_with(&mut c, 3, &steps).unwrap(),
            SchemaState::Unusable(_)
        ));
        assert_eq!(pragma_i64(&c, "user_version").unwrap(), 2);
    }

    #[test]
    fn foreign_and_newer_databases_are_unusable() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t(x)").unwrap();
        assert!(matches!(
            prepare(&mut c).unwrap(),
            SchemaState::Unusable(r) if r.contains("not a Fathom store")
        ));
        let mut c = Connection::open_in_memory().unwrap();
        prepare(&mut c).unwrap();
        c.execute_batch("PRAGMA user_version = 9").unwrap();
        assert!(matches!(
            prepare(&mut c).unwrap(),
            SchemaState::Unusable(r) if r.contains("newer")
        ));
        let mut c = Connection::open_in_memory().unwrap();
        prepare(&mut c).unwrap();
        c.execute_batch("DROP VIEW records_readable; DROP TABLE records")
            .unwrap();
        assert!(matches!(
            prepare(&mut c).unwrap(),
            SchemaState::Unusable(r) if r.contains("do not match")
        ));
    }
}
