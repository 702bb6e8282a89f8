//! Error types. Loading collects every problem of an apply; the other stages fail on the
//! first problem because their inputs come from code, not from people.

use std::fmt;
use std::net::IpAddr;

use thiserror::Error;

use crate::endpoint::EndpointId;

/// One problem in one document, located by file, document number, object and field path.
///
/// Displays as `file: document N (Kind ns/name): field.path: reason`, leaving out the parts
/// that are unknown (a YAML syntax error has no object and no path).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct PolicyError {
    pub file: String,
    /// 1-based document number inside the file; `None` for file-level problems.
    pub document: Option<usize>,
    /// `Kind namespace/name` when the document got far enough to have one.
    pub object: Option<String>,
    /// Dotted field path inside the document (`spec.ingress[0].ports[1].endPort`).
    pub path: String,
    pub reason: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(n) = self.document {
            write!(f, ": document {n}")?;
            if let Some(o) = &self.object {
                write!(f, " ({o})")?;
            }
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Every problem found in an apply. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl PolicyErrors {
    pub fn iter(&self) -> impl Iterator<Item = &PolicyError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The messages, one per problem, in the order found.
    pub fn messages(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "policy rejected: {n} error{}; nothing was applied",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, e) in self.0.iter().enumerate() {
            if i + 1 < n {
                writeln!(f, "  {e}")?;
            } else {
                write!(f, "  {e}")?;
            }
        }
        Ok(())
    }
}

/// Problems building the endpoint inventory.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EndpointError {
    #[error("endpoint id {0} is used twice")]
    DuplicateId(EndpointId),
    #[error("endpoint {0}/{1} is defined twice")]
    DuplicateName(String, String),
    #[error("address {ip} belongs to both {first} and {second}")]
    DuplicateAddress {
        ip: IpAddr,
        first: String,
        second: String,
    },
    #[error("namespace {0:?}: {1}")]
    Namespace(String, String),
    #[error("namespace {0:?} is defined twice")]
    DuplicateNamespace(String),
    #[error("endpoint {endpoint}: {reason}")]
    Invalid { endpoint: String, reason: String },
}

/// Problems allocating identities.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentityError {
    #[error("identity space exhausted: {scope} identities are limited to {limit}")]
    Exhausted { scope: &'static str, limit: u32 },
}

/// Problems compiling a policy set into map entries.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CompileError {
    /// The result does not fit the kernel map; it is refused rather than truncated, because a
    /// truncated policy map silently allows or denies the wrong traffic.
    #[error(
        "{map} map needs {needed} entries but holds at most {capacity}; refusing to load a truncated policy (largest: {largest})"
    )]
    Capacity {
        map: &'static str,
        needed: usize,
        capacity: usize,
        largest: String,
    },
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// Problems evaluating a packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvaluateError {
    #[error("packet refers to unknown endpoint id {0}")]
    UnknownEndpoint(EndpointId),
}
