//! Which interfaces the flow program should be on. Every packet must cross exactly one
//! counting point per direction, so devices that only relay what their ports already saw
//! (bridges) are skipped in automatic mode; their ports (veths, NICs) are attached instead.

use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// Every interface that is up in the host netns (bridges excluded), plus lab veths.
    #[default]
    Auto,
    /// Only the host-side veths of lab pods.
    Lab,
    /// Only interfaces named explicitly.
    None,
}

impl std::str::FromStr for AttachMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AttachMode::Auto),
            "lab" => Ok(AttachMode::Lab),
            "none" => Ok(AttachMode::None),
            _ => Err(format!("bad attach mode {s:?}: expected auto, lab or none")),
        }
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Interfaces of the host netns: name → ifindex.
pub fn host_interfaces(sys_class_net: &Path) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(sys_class_net) else {
        return out;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(idx) = read(&e.path().join("ifindex")).and_then(|s| s.parse().ok()) {
            out.insert(name, idx);
        }
    }
    out
}

fn is_up(sys_class_net: &Path, name: &str) -> bool {
    // IFF_UP in the flags word; operstate is "unknown" for lo and many virtual devices.
    read(&sys_class_net.join(name).join("flags"))
        .and_then(|s| u32::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .is_some_and(|f| f & 1 != 0)
}

fn is_bridge(sys_class_net: &Path, name: &str) -> bool {
    sys_class_net.join(name).join("bridge").exists()
}

/// The interfaces to attach to: (name, ifindex).
pub fn desired(
    sys_class_net: &Path,
    mode: AttachMode,
    explicit: &[String],
    exclude: &[String],
    lab_veths: &[(String, u32)],
) -> Vec<(String, u32)> {
    let all = host_interfaces(sys_class_net);
    let mut want: BTreeMap<String, u32> = BTreeMap::new();
    if mode == AttachMode::Auto {
        for (name, idx) in &all {
            if is_up(sys_class_net, name) && !is_bridge(sys_class_net, name) {
                want.insert(name.clone(), *idx);
            }
        }
    }
    if mode != AttachMode::None {
        for (name, idx) in lab_veths {
            // Only if it still exists (a lab may be going down).
            if all.get(name) == Some(idx) {
                want.insert(name.clone(), *idx);
            }
        }
    }
    for name in explicit {
        if let Some(idx) = all.get(name) {
            want.insert(name.clone(), *idx);
        }
    }
    for name in exclude {
        want.remove(name);
    }
    want.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(dir: &Path, name: &str, idx: u32, flags: &str, bridge: bool) {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("ifindex"), format!("{idx}\n")).unwrap();
        std::fs::write(d.join("flags"), format!("{flags}\n")).unwrap();
        if bridge {
            std::fs::create_dir_all(d.join("bridge")).unwrap();
        }
    }

    #[test]
    fn auto_skips_down_and_bridges_lab_adds_veths() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path(), "lo", 1, "0x9", false);
        fake(t.path(), "eth0", 2, "0x1003", false);
        fake(t.path(), "eth1", 3, "0x1002", false);
        fake(t.path(), "br0", 4, "0x1003", true);
        fake(t.path(), "fhabc000", 5, "0x1003", false);
        let veths = vec![("fhabc000".to_string(), 5), ("gone".to_string(), 9)];
        let names = |v: Vec<(String, u32)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(
            names(desired(t.path(), AttachMode::Auto, &[], &[], &veths)),
            ["eth0", "fhabc000", "lo"]
        );
        assert_eq!(
            names(desired(t.path(), AttachMode::Lab, &[], &[], &veths)),
            ["fhabc000"]
        );
        assert_eq!(
            names(desired(
                t.path(),
                AttachMode::None,
                &["eth1".into()],
                &[],
                &veths
            )),
            ["eth1"]
        );
        assert_eq!(
            names(desired(
                t.path(),
                AttachMode::Auto,
                &[],
                &["lo".into()],
                &veths
            )),
            ["eth0", "fhabc000"]
        );
    }
}
