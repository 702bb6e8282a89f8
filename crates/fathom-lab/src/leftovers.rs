//! What the lab leaves on the host: used after a test suite (`fathom lab leftovers`, the Makefile) to prove that
//! nothing is left behind, and by `down --all` to find the remains of crashed runs.
//!
//! It lists *everything* lab-shaped, whether or not a live lab owns it: while labs are up, their objects show here.

use std::fmt;
use std::path::Path;

use crate::net;
use crate::paths;
use crate::subnet;

/// One lab object found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// "netns", "link", "cgroup", "state file", "subnet reservation" or "file".
    pub kind: &'static str,
    /// Name or path.
    pub name: String,
    /// The lab id the object belongs to, when it can be told.
    pub lab_id: Option<String>,
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.name)?;
        if let Some(id) = &self.lab_id {
            write!(f, " (lab id {id})")?;
        }
        Ok(())
    }
}

/// Everything lab-shaped on the host, as human-readable lines: every netns named `fathom-*`, every link named
/// `fb<6 hex>` / `fh<9 hex>`, every directory under `<cgroup2>/fathom-lab/` (and that directory itself), every
/// state file and subnet reservation. Empty when no lab exists and none was left behind.
pub fn leftovers() -> Vec<String> {
    leftover_items().iter().map(ToString::to_string).collect()
}

/// Only the objects belonging to lab `id` (what a test checks after taking its own lab down while other labs run).
pub fn leftovers_of(id: &str) -> Vec<String> {
    leftover_items()
        .iter()
        .filter(|l| l.lab_id.as_deref() == Some(id))
        .map(ToString::to_string)
        .collect()
}

/// Structured form of [`leftovers`].
pub fn leftover_items() -> Vec<Leftover> {
    let mut out = Vec::new();

    for ns in net::netns_with_prefix(paths::NETNS_PREFIX) {
        let id = ns
            .get(paths::NETNS_PREFIX.len()..paths::NETNS_PREFIX.len() + 6)
            .filter(|s| paths::is_lab_id(s));
        out.push(Leftover {
            kind: "netns",
            lab_id: id.map(str::to_string),
            name: ns,
        });
    }

    match net::host_links() {
        Ok(links) => {
            for name in links.into_keys() {
                if paths::is_bridge_name(&name) || paths::is_host_veth_name(&name) {
                    out.push(Leftover {
                        kind: "link",
                        lab_id: Some(name[2..8].to_string()),
                        name,
                    });
                }
            }
        }
        Err(e) => out.push(Leftover {
            kind: "error",
            name: format!("listing links: {e}"),
            lab_id: None,
        }),
    }

    if let Ok(cgroup2) = paths::cgroup2_mount() {
        let parent = paths::cgroup_parent(&cgroup2);
        if parent.exists() {
            out.push(Leftover {
                kind: "cgroup",
                name: parent.display().to_string(),
                lab_id: None,
            });
        }
        for lab_dir in crate::cgroup::children(&parent) {
            let id = lab_dir
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|s| paths::is_lab_id(s))
                .map(str::to_string);
            for pod_dir in crate::cgroup::children(&lab_dir) {
                out.push(Leftover {
                    kind: "cgroup",
                    name: pod_dir.display().to_string(),
                    lab_id: id.clone(),
                });
            }
            out.push(Leftover {
                kind: "cgroup",
                name: lab_dir.display().to_string(),
                lab_id: id,
            });
        }
    }

    for (path, r) in subnet::list() {
        out.push(Leftover {
            kind: "subnet reservation",
            name: describe(&path, r.as_ref().map(|r| r.name.as_str())),
            lab_id: r.map(|r| r.id),
        });
    }

    if let Ok(entries) = std::fs::read_dir(paths::state_dir()) {
        let mut files: Vec<_> = entries
            .flatten()
            .filter(|e| e.path().is_file())
            .map(|e| e.path())
            .collect();
        files.sort();
        for path in files {
            let state = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<crate::state::LabState>(&t).ok());
            let kind = if state.is_some() {
                "state file"
            } else {
                "file"
            };
            out.push(Leftover {
                kind,
                name: describe(&path, state.as_ref().map(|s| s.name.as_str())),
                lab_id: state.map(|s| s.id),
            });
        }
    }
    out
}

fn describe(path: &Path, lab_name: Option<&str>) -> String {
    match lab_name {
        Some(n) if !n.is_empty() => format!("{} (lab {n})", path.display()),
        _ => path.display().to_string(),
    }
}
