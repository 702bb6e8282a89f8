//! The store's errors. Corruption found at start-up is not an error (the file is moved aside
//! and a fresh one created, see `recovery.rs`); these are the failures a caller has to handle.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("creating store directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a Fathom store this build can read: {reason}")]
    NotAStore { path: PathBuf, reason: String },
    #[error("moving corrupt store {path} aside: {source}")]
    MoveAside {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store {path} is still unusable after being recreated: {reason}")]
    Unrecoverable { path: PathBuf, reason: String },
    #[error("store {path}: unreadable {table} row {id}: {reason}")]
    BadRow {
        path: PathBuf,
        table: &'static str,
        id: i64,
        reason: String,
    },
    #[error("encoding a record: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("committing a batch failed: {0}")]
    BatchFailed(String),
    #[error("the store writer has stopped")]
    WriterGone,
    #[error("invalid store configuration: {0}")]
    Config(String),
    #[error("starting the store writer thread: {0}")]
    Spawn(std::io::Error),
}

/// Attach the database path to SQLite errors, so a log line says which file failed.
pub(crate) trait SqlContext<T> {
    fn ctx(self, path: &std::path::Path) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn ctx(self, path: &std::path::Path) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        })
    }
}
