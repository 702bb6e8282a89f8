//! `down`: remove a lab. Best-effort and idempotent: every step treats "already gone" as success, keeps going past
//! failures, and all failures are reported together at the end. The same teardown rolls back a failed `up`.
//!
//! Teardown works from the lab's state *and* from what it finds carrying the lab's id (netns `fathom-<id>-*`, links
//! `fh<id>*`, cgroups under `fathom-lab/<id>/`), so it also cleans up after a run that crashed half-way.

use std::collections::{BTreeSet, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cgroup;
use crate::error::{LabError, Result};
use crate::leftovers::leftover_items;
use crate::net;
use crate::paths;
use crate::state::{self, list_labs, load_lab, LabState};
use crate::subnet;

/// Take down the lab called `name`. Returns `Ok(false)` if there was no such lab (so calling it twice is fine).
/// Also finds the remains of a lab of that name whose `up` crashed before writing its state (creator process gone).
pub fn down(name: &str) -> Result<bool> {
    match load_lab(name) {
        Ok(lab) => down_lab(&lab).map(|()| true),
        Err(LabError::NotFound { .. }) => {
            let orphans: Vec<_> = subnet::list()
                .into_iter()
                .filter_map(|(_, r)| r)
                .filter(|r| r.name == name && !process_alive(r.pid))
                .collect();
            for r in &orphans {
                down_lab(&orphan_state(&r.id, &r.name, r.index)?)?;
            }
            Ok(!orphans.is_empty())
        }
        Err(e) => Err(e),
    }
}

/// Take down one lab given its state: kill its processes, remove netns, links, cgroups, then its subnet
/// reservation and state file. The state file is kept if anything failed, so `down` can be retried.
pub fn down_lab(lab: &LabState) -> Result<()> {
    let mut errors = teardown(lab);
    if errors.is_empty() {
        if let Err(e) = subnet::release(lab.subnet_index, &lab.id) {
            errors.push(e.to_string());
        }
        if let Err(e) = state::remove_state_if_ours(&lab.name, &lab.id) {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(LabError::Down {
            name: lab.name.clone(),
            id: lab.id.clone(),
            errors,
        })
    }
}

/// Take down every lab, then the remains of crashed runs (objects carrying a lab id that has no state file and whose
/// creator process is gone). Labs being created right now by a live process are left alone. Returns the names
/// (or ids, for nameless remains) of what was removed.
pub fn down_all() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    for lab in list_labs()? {
        match down_lab(&lab) {
            Ok(()) => removed.push(lab.name.clone()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let live_ids: HashSet<String> = list_labs()?.into_iter().map(|l| l.id).collect();
    let reservations: Vec<_> = subnet::list().into_iter().filter_map(|(_, r)| r).collect();
    let orphan_ids: BTreeSet<String> = leftover_items()
        .into_iter()
        .filter_map(|l| l.lab_id)
        .filter(|id| !live_ids.contains(id))
        .collect();
    for id in orphan_ids {
        let reservation = reservations.iter().find(|r| r.id == id);
        if reservation.is_some_and(|r| process_alive(r.pid)) {
            continue;
        }
        let (name, index) = reservation
            .map(|r| (r.name.clone(), r.index))
            .unwrap_or_else(|| (String::new(), 0));
        let state = orphan_state(&id, &name, index)?;
        let mut errs = teardown(&state);
        if errs.is_empty() && reservation.is_some() {
            if let Err(e) = subnet::release(index, &id) {
                errs.push(e.to_string());
            }
        }
        if errs.is_empty() {
            removed.push(if name.is_empty() {
                format!("id {id}")
            } else {
                format!("{name} (id {id}, crashed)")
            });
        } else {
            errors.push(format!("remains of lab id {id}:\n  {}", errs.join("\n  ")));
        }
    }
    if errors.is_empty() {
        Ok(removed)
    } else {
        Err(LabError::Other {
            context: "fathom lab down --all".into(),
            message: errors.join("\n"),
        })
    }
}

/// A state with no pods: teardown discovers the pods' objects by id.
fn orphan_state(id: &str, name: &str, index: u8) -> Result<LabState> {
    let cgroup2 = paths::cgroup2_mount()?;
    Ok(LabState {
        name: name.to_string(),
        id: id.to_string(),
        created: String::new(),
        bridge: paths::bridge_name(id),
        bridge_ifindex: 0,
        subnet_index: index,
        ipv4_subnet: subnet::ipv4_subnet(index),
        ipv6_subnet: subnet::ipv6_subnet(index),
        cgroup_dir: paths::lab_cgroup(&cgroup2, id),
        namespaces: Vec::new(),
        pods: Vec::new(),
    })
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 only checks existence; EPERM would mean it exists but is not ours (we run as root, so unlikely).
    !matches!(
        kill(Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Remove every kernel object of the lab. Returns the errors; empty means all gone.
pub(crate) fn teardown(lab: &LabState) -> Vec<String> {
    let mut errors = Vec::new();
    let id = &lab.id;

    // 1. Processes first, so nothing holds a netns open or keeps a cgroup busy.
    let mut cgroups: BTreeSet<PathBuf> = lab.pods.iter().map(|p| p.cgroup_path.clone()).collect();
    cgroups.extend(cgroup::children(&lab.cgroup_dir));
    for cg in &cgroups {
        if let Err(e) = cgroup::kill_all(cg) {
            errors.push(e.to_string());
        }
    }
    let mut netns: BTreeSet<String> = lab.pods.iter().map(|p| p.netns.clone()).collect();
    netns.extend(net::netns_with_prefix(&format!(
        "{}{id}-",
        paths::NETNS_PREFIX
    )));
    kill_netns_processes(&netns);

    // 2. Links. Deleting the host end of a veth deletes the pair at once; deleting only the netns would leave the
    //    kernel to destroy the veth asynchronously, and a `leftovers()` check right after `down` could still see it.
    let mut veths: BTreeSet<String> = lab.pods.iter().map(|p| p.host_veth.clone()).collect();
    match net::host_links() {
        Ok(links) => {
            veths.extend(
                links
                    .keys()
                    .filter(|n| paths::is_host_veth_name(n) && n[2..8] == **id)
                    .cloned(),
            );
            veths.retain(|v| links.contains_key(v));
            for v in &veths {
                if let Err(e) = net::delete_link(v) {
                    errors.push(e.to_string());
                }
            }
            if links.contains_key(&lab.bridge) {
                if let Err(e) = net::delete_link(&lab.bridge) {
                    errors.push(e.to_string());
                }
            }
        }
        Err(e) => errors.push(e.to_string()),
    }

    // 3. Network namespaces.
    for ns in &netns {
        if let Err(e) = net::delete_netns(ns) {
            errors.push(e.to_string());
        }
    }

    // 4. Cgroups: pods, the lab, and the shared parent if this was the last lab.
    for cg in &cgroups {
        if let Err(e) = cgroup::remove(cg) {
            errors.push(e.to_string());
        }
    }
    if let Err(e) = cgroup::remove(&lab.cgroup_dir) {
        errors.push(e.to_string());
    }
    if let Some(parent) = lab.cgroup_dir.parent() {
        if let Err(e) = cgroup::remove_if_empty(parent) {
            errors.push(e.to_string());
        }
    }
    errors
}

/// SIGKILL processes that live in one of these netns without being in a pod cgroup (e.g. started with
/// `ip netns exec`). They would keep the namespace alive after its name is gone.
fn kill_netns_processes(netns: &BTreeSet<String>) {
    let targets: HashSet<(u64, u64)> = netns
        .iter()
        .filter_map(|n| std::fs::metadata(paths::netns_path(n)).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if targets.is_empty() {
        return;
    }
    let me = std::process::id();
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        let mut found = false;
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(m) = std::fs::metadata(entry.path().join("ns/net")) else {
                continue;
            };
            if targets.contains(&(m.dev(), m.ino())) {
                found = true;
                if let Ok(pid) = i32::try_from(pid) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
        if !found {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
