//! Errors of the enrichment crate. Most of what this crate reads races with processes exiting
//! and cgroups being removed, so callers usually treat a per-process error as "skip", not fatal;
//! the variants keep the path so that the rare fatal case (no /proc at all) is diagnosable.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("malformed {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
}

impl EnrichError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        EnrichError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        EnrichError::Parse {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// True when the error only means "the process (or cgroup) went away while we looked",
    /// which is routine on a busy host and not worth reporting.
    pub fn is_not_found(&self) -> bool {
        matches!(self, EnrichError::Io { source, .. }
            if source.kind() == io::ErrorKind::NotFound || source.raw_os_error() == Some(ESRCH))
    }
}

/// Reading the files of a process that is exiting fails with ESRCH. Its value is 3 on every
/// Linux architecture; not worth a libc dependency for one constant.
const ESRCH: i32 = 3;

pub type Result<T, E = EnrichError> = std::result::Result<T, E>;
