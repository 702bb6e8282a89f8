//! Where the lab keeps things on the host, and the name patterns of what it creates.
//!
//! Every kernel object a lab creates carries the lab's 6-hex-digit id in its name, so that a crashed run can be found
//! and cleaned up by id alone (see `leftovers` and `down --all`).

use std::path::{Path, PathBuf};

use crate::error::{LabError, Result};

/// State files live on tmpfs: a lab does not survive a reboot, and neither should its description.
pub const STATE_DIR: &str = "/run/fathom/lab";
/// Subnet reservations: one file per /24 in use, created with O_EXCL so concurrent `up`s never share a subnet.
pub const SUBNET_DIR: &str = "/run/fathom/lab/subnets";
/// Where `ip netns` keeps its bind mounts.
pub const NETNS_DIR: &str = "/run/netns";
/// Parent of all lab cgroups, directly under the cgroup2 mount.
pub const CGROUP_PARENT: &str = "fathom-lab";
/// Prefix of pod netns names: `fathom-<id>-<ns>-<pod>`.
pub const NETNS_PREFIX: &str = "fathom-";

pub fn state_dir() -> PathBuf {
    PathBuf::from(STATE_DIR)
}

pub fn subnet_dir() -> PathBuf {
    PathBuf::from(SUBNET_DIR)
}

pub fn state_file(name: &str) -> PathBuf {
    state_dir().join(format!("{name}.json"))
}

pub fn bridge_name(id: &str) -> String {
    format!("fb{id}")
}

/// Host side of pod `idx`'s veth: `fh<id><idx:03>` = 11 chars, under IFNAMSIZ-1 (15).
pub fn host_veth_name(id: &str, idx: usize) -> String {
    format!("fh{id}{idx:03}")
}

pub fn netns_name(id: &str, ns: &str, pod: &str) -> String {
    format!("{NETNS_PREFIX}{id}-{ns}-{pod}")
}

pub fn netns_path(netns: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(netns)
}

/// `fb` + 6 lowercase hex digits.
pub fn is_bridge_name(name: &str) -> bool {
    name.len() == 8 && name.starts_with("fb") && is_hex(&name[2..])
}

/// `fh` + 9 lowercase hex/decimal digits (6 id + 3 index).
pub fn is_host_veth_name(name: &str) -> bool {
    name.len() == 11 && name.starts_with("fh") && is_hex(&name[2..])
}

pub fn is_lab_id(s: &str) -> bool {
    s.len() == 6 && is_hex(s)
}

fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// Mount point of the cgroup2 hierarchy, from /proc/mounts. Never assumed: on hybrid hosts (like the dev machines)
/// it is /sys/fs/cgroup/unified, on modern ones /sys/fs/cgroup.
pub fn cgroup2_mount() -> Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts")
        .map_err(|e| LabError::io("reading /proc/mounts", e))?;
    cgroup2_from_mounts(&mounts).ok_or(LabError::NoCgroup2)
}

fn cgroup2_from_mounts(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let (_src, target, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(unescape_mount_path(target)))
    })
}

/// /proc/mounts escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `<cgroup2>/fathom-lab`
pub fn cgroup_parent(cgroup2: &Path) -> PathBuf {
    cgroup2.join(CGROUP_PARENT)
}

/// `<cgroup2>/fathom-lab/<id>`
pub fn lab_cgroup(cgroup2: &Path, id: &str) -> PathBuf {
    cgroup_parent(cgroup2).join(id)
}

/// `<cgroup2>/fathom-lab/<id>/<ns>.<pod>` (pod names cannot contain '.', so this is unambiguous).
pub fn pod_cgroup(cgroup2: &Path, id: &str, ns: &str, pod: &str) -> PathBuf {
    lab_cgroup(cgroup2, id).join(format!("{ns}.{pod}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_in_hybrid_and_unified_layouts() {
        let hybrid = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(
            cgroup2_from_mounts(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n";
        assert_eq!(
            cgroup2_from_mounts(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(cgroup2_from_mounts("proc /proc proc rw 0 0\n"), None);
        let escaped = "none /mnt/my\\040cg cgroup2 rw 0 0\n";
        assert_eq!(
            cgroup2_from_mounts(escaped),
            Some(PathBuf::from("/mnt/my cg"))
        );
    }

    #[test]
    fn name_patterns() {
        let id = "0a1b2c";
        assert!(is_bridge_name(&bridge_name(id)));
        assert!(is_host_veth_name(&host_veth_name(id, 199)));
        assert!(host_veth_name(id, 199).len() <= 15);
        assert!(!is_bridge_name("fbxyz123"));
        assert!(!is_host_veth_name("fh0a1b2c0001"));
        assert!(!is_bridge_name("ifb0"));
    }
}
