//! Opening the database file, and what to do when it is not usable.
//!
//! A history store is a cache of what the node saw, not a system of record: when the file is
//! damaged the right move is to keep the evidence and start recording again, not to refuse to
//! start. Unusable means: not a SQLite file (bad header), `PRAGMA quick_check` failing, SQLite
//! calling it corrupt, or a schema we cannot use (another application's database, a newer
//! Fathom's, or a version with no migration). Such a file is renamed to
//! `<name>.corrupt-<timestamp>` (its `-wal` alongside) and a fresh one is created.
//! I/O trouble (permissions, read-only or full disk, a lock held elsewhere) is *not*
//! corruption: moving a healthy file aside would throw history away, so that is an error.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fathom_model::Timestamp;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::error::StoreError;
use crate::schema::{self, SchemaState};

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// Page size of new databases (see `configure_writer`).
pub(crate) const PAGE_SIZE: u64 = 16384;

/// Why a file was moved aside, and where to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub reason: String,
    pub moved_to: PathBuf,
}

enum OpenError {
    Unusable(String),
    Fatal(StoreError),
}

fn classify(path: &Path, e: rusqlite::Error) -> OpenError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            OpenError::Unusable(e.to_string())
        }
        _ => OpenError::Fatal(StoreError::Sqlite {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// `path`'s sibling named `<file name><suffix>`.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// A non-empty file must start with SQLite's magic. Empty is fine: in WAL mode a new
/// database can live entirely in its `-wal` until the first checkpoint.
fn header_problem(path: &Path) -> Result<Option<String>, StoreError> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut head = Vec::with_capacity(100);
    let read = (&mut f).take(100).read_to_end(&mut head);
    if let Err(source) = read {
        return Err(StoreError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    if head.is_empty() {
        return Ok(None);
    }
    if head.len() < 100 || &head[..16] != SQLITE_MAGIC {
        return Ok(Some(format!(
            "not a SQLite database ({} byte header does not start with \"SQLite format 3\")",
            head.len()
        )));
    }
    Ok(None)
}

/// Connection settings for the writer. Why each:
/// - WAL: readers (API queries) never block the writer, and the writer never blocks them.
/// - synchronous=FULL: each batch's commit is fsynced, so even a power cut loses at most the
///   batch being written; with one commit per batch that is a few fsyncs a second.
/// - page_size=16384: a flow row is ~1.4 KB, and 4 KiB pages fit only two of them (a third
///   of every table page wasted); 16 KiB pages fit eleven. Also takes effect only on a new
///   database.
/// - auto_vacuum=INCREMENTAL: lets retention hand freed pages back to the file system with
///   `PRAGMA incremental_vacuum` in small steps instead of a full `VACUUM` (which rewrites
///   the whole file under an exclusive lock). It only takes effect on a new database, which
///   is the only kind we create.
fn configure_writer(
    path: &Path,
    conn: &Connection,
    wal_limit: u64,
    wal_pages: u64,
) -> Result<(), OpenError> {
    let sql = |e| classify(path, e);
    conn.busy_timeout(Duration::from_millis(250)).map_err(sql)?;
    conn.execute_batch(&format!(
        "PRAGMA page_size = {PAGE_SIZE}; PRAGMA auto_vacuum = INCREMENTAL;"
    ))
    .map_err(sql)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(sql)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Fatal(StoreError::NotAStore {
            path: path.to_path_buf(),
            reason: format!("journal_mode stayed {mode:?}; the store needs WAL"),
        }));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = FULL;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16384;
         PRAGMA journal_size_limit = {wal_limit};
         PRAGMA wal_autocheckpoint = {wal_pages};
         PRAGMA analysis_limit = 1000;"
    ))
    .map_err(sql)
}

fn try_open(path: &Path, max_bytes: u64) -> Result<(Connection, SchemaState), OpenError> {
    if let Some(reason) = header_problem(path).map_err(OpenError::Fatal)? {
        return Err(OpenError::Unusable(reason));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| classify(path, e))?;

    // quick_check walks every page (O(file size), ~1-2 s per GiB) but not index contents;
    // done once, before the writer starts.
    let problems: Vec<String> = conn
        .prepare("PRAGMA quick_check(5)")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| classify(path, e))?;
    if problems != ["ok"] {
        return Err(OpenError::Unusable(format!(
            "quick_check: {}",
            problems.join("; ")
        )));
    }

    // WAL size: a sixteenth of the size budget (at most 64 MiB), so that checkpoints keep it
    // a small part of what `max_bytes` allows.
    let wal_limit = (max_bytes / 16).clamp(64 * 1024, 64 << 20);
    let wal_pages = (wal_limit / PAGE_SIZE).clamp(16, 1000);
    configure_writer(path, &conn, wal_limit, wal_pages)?;

    match schema::prepare(&mut conn).map_err(|e| classify(path, e))? {
        SchemaState::Unusable(reason) => Err(OpenError::Unusable(reason)),
        state => Ok((conn, state)),
    }
}

/// Rename the database (and its WAL) to `<name>.corrupt-<timestamp>`; drop the shared-memory
/// index, which is only a cache of the WAL.
fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let stamp: String = Timestamp::now()
        .to_rfc3339()
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let mut target = sibling(path, &format!(".corrupt-{stamp}"));
    let mut n = 1;
    while target.exists() {
        target = sibling(path, &format!(".corrupt-{stamp}-{n}"));
        n += 1;
    }
    let err = |source| StoreError::MoveAside {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::rename(path, &target) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let wal = sibling(path, "-wal");
    if wal.exists() {
        std::fs::rename(&wal, sibling(&target, "-wal")).map_err(err)?;
    }
    match std::fs::remove_file(sibling(path, "-shm")) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    Ok(target)
}

/// Open (creating the directory and the file as needed) the database the writer will use.
pub(crate) fn open(
    path: &Path,
    max_bytes: u64,
) -> Result<(Connection, SchemaState, Option<Recovery>), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let reason = match try_open(path, max_bytes) {
        Ok((conn, state)) => return Ok((conn, state, None)),
        Err(OpenError::Fatal(e)) => return Err(e),
        Err(OpenError::Unusable(reason)) => reason,
    };
    let moved_to = move_aside(path)?;
    tracing::error!(
        path = %path.display(),
        moved_to = %moved_to.display(),
        %reason,
        "flow store was unusable: moved it aside and started an empty one (history before now \
         is only in the moved file)"
    );
    match try_open(path, max_bytes) {
        Ok((conn, state)) => Ok((conn, state, Some(Recovery { reason, moved_to }))),
        Err(OpenError::Fatal(e)) => Err(e),
        Err(OpenError::Unusable(again)) => Err(StoreError::Unrecoverable {
            path: path.to_path_buf(),
            reason: again,
        }),
    }
}

/// A connection for queries only: no creation, no recovery, no writes.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let sql = |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    // Read-write open (not READ_ONLY): a WAL reader must be able to create the -shm index.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sql)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
    conn.execute_batch("PRAGMA query_only = 1; PRAGMA cache_size = -16384;")
        .map_err(sql)?;
    let (app, version): (i64, i64) = conn
        .query_row(
            "SELECT application_id, user_version FROM pragma_application_id, pragma_user_version",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(sql)?;
    if app != i64::from(schema::APPLICATION_ID) || version != i64::from(schema::SCHEMA_VERSION) {
        return Err(StoreError::NotAStore {
            path: path.to_path_buf(),
            reason: format!("application_id {app:#x}, schema version {version}"),
        });
    }
    Ok(conn)
}
