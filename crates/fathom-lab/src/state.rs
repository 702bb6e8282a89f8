//! The lab inventory: what `up` created, written as JSON to `/run/fathom/lab/<name>.json`.
//!
//! This is a stable interface. The agent reads it with [`list_labs`] to attach to the host veths and to map IP
//! addresses and cgroup ids to pods; tests read it to know where to run things. Add fields, don't rename them.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::paths;
use crate::spec::{Labels, PortSpec};

/// One running lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// Lab name (DNS-1123 label), unique among existing labs; the state file is `<name>.json`.
    pub name: String,
    /// 6 lowercase hex digits, random per `up`; part of every kernel object name the lab owns.
    pub id: String,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
    /// Host-netns bridge `fb<id>` (no IP address) all pod veths are enslaved to.
    pub bridge: String,
    /// ifindex of the bridge in the host netns.
    pub bridge_ifindex: u32,
    /// The N in 10.213.N.0/24 and fd66:6174:686f:N::/64 (reserved under `/run/fathom/lab/subnets/N`).
    pub subnet_index: u8,
    pub ipv4_subnet: Ipv4Net,
    pub ipv6_subnet: Ipv6Net,
    /// `<cgroup2 mount>/fathom-lab/<id>`; pod cgroups are its children.
    pub cgroup_dir: PathBuf,
    pub namespaces: Vec<LabNamespace>,
    /// In spec order; a pod's index in this list is the `<idx>` in its host veth name.
    pub pods: Vec<LabPod>,
}

/// A lab namespace and its labels (including `kubernetes.io/metadata.name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabNamespace {
    pub name: String,
    pub labels: Labels,
}

/// One pod: a network namespace with one veth (`eth0`) on the lab bridge, plus a cgroup for its processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabPod {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    /// Labels of the pod's namespace (for namespaceSelectors), including `kubernetes.io/metadata.name`.
    pub namespace_labels: Labels,
    pub ports: Vec<PortSpec>,
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
    /// Netns name as `ip netns` knows it (`fathom-<id>-<ns>-<pod>`); the bind mount is `/run/netns/<netns>`.
    pub netns: String,
    /// Host side of the veth pair (`fh<id><idx:03>`), in the host netns, enslaved to the bridge.
    pub host_veth: String,
    /// ifindex of `host_veth` in the host netns (what TC programs attach to).
    pub host_ifindex: u32,
    /// Interface name inside the pod netns (always `eth0`).
    pub pod_ifname: String,
    /// MAC address of `pod_ifname`, lowercase `aa:bb:..`.
    pub pod_mac: String,
    /// Absolute path of the pod's cgroup v2 directory.
    pub cgroup_path: PathBuf,
    /// Inode of `cgroup_path` = the cgroup id that `bpf_get_current_cgroup_id()` returns for the pod's processes.
    pub cgroup_id: u64,
}

impl LabPod {
    /// `"<namespace>/<name>"`, the form `fathom lab exec` and [`LabState::pod`] take.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// `/run/netns/<netns>`: open it and `setns(CLONE_NEWNET)` to enter the pod's network.
    pub fn netns_path(&self) -> PathBuf {
        paths::netns_path(&self.netns)
    }

    /// True when `ip` is one of the pod's addresses.
    pub fn has_ip(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => v4 == self.ipv4,
            IpAddr::V6(v6) => v6 == self.ipv6,
        }
    }
}

impl LabState {
    /// Look a pod up by `"ns/pod"`.
    pub fn pod(&self, ns_pod: &str) -> Option<&LabPod> {
        let (ns, name) = ns_pod.split_once('/')?;
        self.pods
            .iter()
            .find(|p| p.namespace == ns && p.name == name)
    }

    /// Like [`LabState::pod`], with an error that lists the pods that do exist.
    pub fn require_pod(&self, ns_pod: &str) -> Result<&LabPod> {
        self.pod(ns_pod).ok_or_else(|| LabError::Other {
            context: format!("lab {:?}", self.name),
            message: format!(
                "no pod {ns_pod:?} (expected NAMESPACE/POD; pods: {})",
                self.pods
                    .iter()
                    .map(LabPod::full_name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&LabPod> {
        self.pods.iter().find(|p| p.has_ip(ip))
    }

    pub fn pod_by_cgroup_id(&self, cgroup_id: u64) -> Option<&LabPod> {
        self.pods.iter().find(|p| p.cgroup_id == cgroup_id)
    }

    pub fn pod_by_host_ifindex(&self, ifindex: u32) -> Option<&LabPod> {
        self.pods.iter().find(|p| p.host_ifindex == ifindex)
    }

    /// Labels of a namespace by name.
    pub fn namespace_labels(&self, ns: &str) -> Option<&Labels> {
        self.namespaces
            .iter()
            .find(|n| n.name == ns)
            .map(|n| &n.labels)
    }

    /// Path of this lab's state file.
    pub fn state_file(&self) -> PathBuf {
        paths::state_file(&self.name)
    }
}

/// Every lab that has a state file, sorted by name. A missing state directory means no labs.
pub fn list_labs() -> Result<Vec<LabState>> {
    list_labs_in(&paths::state_dir())
}

pub(crate) fn list_labs_in(dir: &Path) -> Result<Vec<LabState>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io(format!("reading {}", dir.display()), e)),
    };
    let mut labs = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| LabError::io(format!("reading {}", dir.display()), e))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        // Temporary files start with '.'; they are renamed/linked into place atomically, never read half-written.
        if file_name.starts_with('.') || !file_name.ends_with(".json") {
            continue;
        }
        match read_state(&entry.path()) {
            Ok(state) => {
                labs.insert(state.name.clone(), state);
            }
            // The file was removed by a concurrent `down` between readdir and open.
            Err(LabError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(labs.into_values().collect())
}

/// The lab called `name`.
pub fn load_lab(name: &str) -> Result<LabState> {
    let path = paths::state_file(name);
    match read_state(&path) {
        Err(LabError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
            Err(LabError::NotFound {
                name: name.to_string(),
                available: list_labs()
                    .map(|l| l.into_iter().map(|s| s.name).collect())
                    .unwrap_or_default(),
            })
        }
        other => other,
    }
}

fn read_state(path: &Path) -> Result<LabState> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LabError::io(format!("reading {}", path.display()), e))?;
    serde_json::from_str(&text).map_err(|e| LabError::Other {
        context: format!("parsing lab state {}", path.display()),
        message: e.to_string(),
    })
}

/// Publish the state file without ever overwriting another lab's: write a temporary file, then hard-link it to the
/// final name (link(2) fails with EEXIST instead of replacing). Readers never see a partial file.
pub(crate) fn write_state_new(state: &LabState) -> Result<()> {
    let dir = paths::state_dir();
    let final_path = state.state_file();
    let tmp = dir.join(format!(".{}.{}.tmp", state.name, state.id));
    let json = serde_json::to_string_pretty(state).map_err(|e| LabError::Other {
        context: "serializing lab state".into(),
        message: e.to_string(),
    })?;
    std::fs::write(&tmp, json + "\n")
        .map_err(|e| LabError::io(format!("writing {}", tmp.display()), e))?;
    let linked = std::fs::hard_link(&tmp, &final_path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(LabError::AlreadyExists {
            name: state.name.clone(),
            path: final_path,
        }),
        Err(e) => Err(LabError::io(
            format!("creating {}", final_path.display()),
            e,
        )),
    }
}

/// Remove the state file of `state`, but only if it is still this lab's (same id): after our `down`, another run may
/// already have created a new lab with the same name.
pub(crate) fn remove_state_if_ours(state_name: &str, id: &str) -> Result<()> {
    let path = paths::state_file(state_name);
    match read_state(&path) {
        Ok(current) if current.id == id => std::fs::remove_file(&path)
            .or_else(|e| {
                if e.kind() == ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| LabError::io(format!("removing {}", path.display()), e)),
        Ok(_) => Ok(()),
        Err(LabError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_state_dir_means_no_labs() {
        assert!(list_labs_in(Path::new("/nonexistent/fathom-lab-test"))
            .unwrap()
            .is_empty());
    }
}
