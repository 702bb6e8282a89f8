//! The library's error type. Every variant carries what a person needs to act on it: the command and its stderr,
//! the path, the lab name.

use std::path::PathBuf;

use crate::spec::SpecError;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Spec(#[from] SpecError),

    #[error("creating a lab needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for netns, links and cgroups); run as root")]
    NotRoot,

    #[error("a lab named {name:?} already exists (state file {path}); take it down first with `fathom lab down {name}` or pick another --name")]
    AlreadyExists { name: String, path: PathBuf },

    #[error("no lab named {name:?}{}", hint(.available))]
    NotFound {
        name: String,
        available: Vec<String>,
    },

    #[error("all 256 lab subnets (10.213.0.0/16) are reserved under {dir}; take labs down or remove stale reservations with `fathom lab down --all`")]
    NoFreeSubnet { dir: PathBuf },

    #[error("no cgroup2 filesystem is mounted (nothing of type cgroup2 in /proc/mounts)")]
    NoCgroup2,

    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },

    #[error("{context}: {message}")]
    Other { context: String, message: String },

    /// `up` failed after it had started creating things; everything was rolled back (or `rollback` says what not).
    #[error("bringing up lab {name:?} (id {id}): {source}{}", rollback_note(.rollback))]
    Up {
        name: String,
        id: String,
        source: Box<LabError>,
        rollback: Vec<String>,
    },

    /// `down` removed what it could; these are the parts that failed.
    #[error("taking down lab {name:?} (id {id}) left errors:\n  {}", .errors.join("\n  "))]
    Down {
        name: String,
        id: String,
        errors: Vec<String>,
    },

    /// Test hook ([`crate::UpOptions::fail_at`]).
    #[error("injected failure at {0}")]
    Injected(String),
}

fn hint(available: &[String]) -> String {
    if available.is_empty() {
        " (no labs exist)".to_string()
    } else {
        format!(" (labs: {})", available.join(", "))
    }
}

fn rollback_note(errors: &[String]) -> String {
    if errors.is_empty() {
        "; rolled back".to_string()
    } else {
        format!("; rollback also failed:\n  {}", errors.join("\n  "))
    }
}

impl LabError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> LabError {
        LabError::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = LabError> = std::result::Result<T, E>;
