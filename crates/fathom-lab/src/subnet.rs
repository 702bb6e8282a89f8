//! Per-lab address ranges and their reservations.
//!
//! Lab N gets 10.213.N.0/24 and fd66:6174:686f:N::/64 ("fd66:6174:686f" spells "fatho" in ASCII). The IPv6 numbers
//! reuse the IPv4 decimal digits as hex digits (10.213.12.34 <-> fd66:6174:686f:12::34) so the two addresses of a
//! pod are recognisable at a glance. N is reserved by creating `/run/fathom/lab/subnets/N` with O_EXCL, which is
//! atomic across processes: concurrent test binaries never get the same subnet. The file records the lab id, name and
//! creator pid, which is how `down --all` recognises the remains of a run that crashed before writing its state.

use std::io::{ErrorKind, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::paths;

/// First host number used for pods (.10, ::10); lower ones are left for future gateway/service addresses.
pub const FIRST_HOST: u8 = 10;

/// What a reservation file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub index: u8,
    pub id: String,
    pub name: String,
    pub pid: u32,
}

/// Read the decimal digits of `n` as hex (12 -> 0x12), see the module comment.
fn dec_as_hex(n: u8) -> u16 {
    let d = u16::from(n);
    (d / 100) << 8 | ((d / 10) % 10) << 4 | (d % 10)
}

pub fn ipv4_subnet(index: u8) -> Ipv4Net {
    // A /24 prefix length is always valid.
    Ipv4Net::new(Ipv4Addr::new(10, 213, index, 0), 24).expect("/24 is a valid prefix")
}

pub fn ipv6_subnet(index: u8) -> Ipv6Net {
    Ipv6Net::new(
        Ipv6Addr::new(0xfd66, 0x6174, 0x686f, dec_as_hex(index), 0, 0, 0, 0),
        64,
    )
    .expect("/64 is a valid prefix")
}

/// Address of the `pod_idx`-th pod. The caller has checked `pod_idx < MAX_PODS`, so the host part stays <= 254.
pub fn pod_ipv4(index: u8, pod_idx: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 213, index, host_number(pod_idx))
}

pub fn pod_ipv6(index: u8, pod_idx: usize) -> Ipv6Addr {
    Ipv6Addr::new(
        0xfd66,
        0x6174,
        0x686f,
        dec_as_hex(index),
        0,
        0,
        0,
        dec_as_hex(host_number(pod_idx)),
    )
}

fn host_number(pod_idx: usize) -> u8 {
    u8::try_from(usize::from(FIRST_HOST) + pod_idx)
        .ok()
        .filter(|h| *h < 255)
        .expect("pod index checked against MAX_PODS")
}

fn reservation_path(dir: &Path, index: u8) -> PathBuf {
    dir.join(index.to_string())
}

/// Reserve the lowest free N. The returned index is released by [`release`].
pub fn reserve(id: &str, name: &str) -> Result<u8> {
    reserve_in(&paths::subnet_dir(), id, name)
}

fn reserve_in(dir: &Path, id: &str, name: &str) -> Result<u8> {
    std::fs::create_dir_all(dir)
        .map_err(|e| LabError::io(format!("creating {}", dir.display()), e))?;
    for index in 0..=u8::MAX {
        let path = reservation_path(dir, index);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                let r = Reservation {
                    index,
                    id: id.to_string(),
                    name: name.to_string(),
                    pid: std::process::id(),
                };
                // serde_json on a plain struct cannot fail.
                let body = serde_json::to_string(&r).unwrap_or_default();
                if let Err(e) = f.write_all(body.as_bytes()) {
                    let _ = std::fs::remove_file(&path);
                    return Err(LabError::io(format!("writing {}", path.display()), e));
                }
                return Ok(index);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(LabError::io(format!("creating {}", path.display()), e)),
        }
    }
    Err(LabError::NoFreeSubnet {
        dir: dir.to_path_buf(),
    })
}

/// Release subnet `index` if it is still reserved by lab `id` (never someone else's).
pub fn release(index: u8, id: &str) -> Result<()> {
    let path = reservation_path(&paths::subnet_dir(), index);
    match read(&path) {
        Some(r) if r.id != id => Ok(()),
        _ => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(LabError::io(format!("removing {}", path.display()), e))
            }
            _ => Ok(()),
        },
    }
}

fn read(path: &Path) -> Option<Reservation> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// All current reservations with their file paths (unparseable ones have `None`).
pub fn list() -> Vec<(PathBuf, Option<Reservation>)> {
    let Ok(entries) = std::fs::read_dir(paths::subnet_dir()) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .flatten()
        .map(|e| (e.path(), read(&e.path())))
        .collect();
    // Numeric order (2 before 10), unparseable names last.
    out.sort_by_key(|(p, _)| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u16>().ok())
            .unwrap_or(u16::MAX)
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(ipv4_subnet(7).to_string(), "10.213.7.0/24");
        assert_eq!(ipv6_subnet(12).to_string(), "fd66:6174:686f:12::/64");
        assert_eq!(ipv6_subnet(255).to_string(), "fd66:6174:686f:255::/64");
        assert_eq!(pod_ipv4(3, 0).to_string(), "10.213.3.10");
        assert_eq!(pod_ipv6(3, 0).to_string(), "fd66:6174:686f:3::10");
        assert_eq!(pod_ipv4(3, 199).to_string(), "10.213.3.209");
        assert_eq!(pod_ipv6(3, 199).to_string(), "fd66:6174:686f:3::209");
        assert!(ipv4_subnet(3).contains(&pod_ipv4(3, 5)));
        assert!(ipv6_subnet(3).contains(&pod_ipv6(3, 5)));
    }

    #[test]
    fn reservations_are_exclusive() {
        let dir =
            std::env::temp_dir().join(format!("fathom-lab-subnet-test-{}", std::process::id()));
        let a = reserve_in(&dir, "aaaaaa", "a").unwrap();
        let b = reserve_in(&dir, "bbbbbb", "b").unwrap();
        assert_ne!(a, b);
        let r = read(&reservation_path(&dir, a)).unwrap();
        assert_eq!(
            (r.id.as_str(), r.name.as_str(), r.pid),
            ("aaaaaa", "a", std::process::id())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
