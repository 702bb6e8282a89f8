//! TLS plaintext: attaching `bpf/tls.bpf.c` (part of the l7 object) to every OpenSSL `libssl`
//! on the node.
//!
//! A uprobe is placed on a file (its inode), for every process mapping it. So each distinct
//! libssl file — told apart by (device, inode), since the same file is reached through many
//! paths (`/lib` vs `/usr/lib`, `/proc/PID/root/...` of a container) — is attached once:
//! - the system libssl (common paths and `ldconfig -p`), attached for the agent's lifetime;
//! - every other libssl a process maps, found in `/proc/PID/maps` by [`LibsslTracker::rescan`]
//!   (new processes and processes whose executable changed since the last scan, i.e. exec;
//!   every process again every [`FULL_RESCAN_EVERY`] scans for late `dlopen`), detached when
//!   no process maps it any more.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use libbpf_rs::{Link, UprobeOpts};

use super::L7Sensor;
use crate::abi::l7::{TLS_COOKIE_EX, TLS_COOKIE_READ};

/// (function, attach cookie): the four OpenSSL calls that move application data.
pub const SSL_FUNCTIONS: &[(&str, u64)] = &[
    ("SSL_write", 0),
    ("SSL_read", TLS_COOKIE_READ),
    ("SSL_write_ex", TLS_COOKIE_EX),
    ("SSL_read_ex", TLS_COOKIE_READ | TLS_COOKIE_EX),
];

/// Every this many scans, every process's maps are read again (libraries `dlopen`ed late).
pub const FULL_RESCAN_EVERY: u32 = 15;

/// Where distributions put the OpenSSL 3 and 1.1 libssl.
const SYSTEM_CANDIDATES: &[&str] = &[
    "/lib/x86_64-linux-gnu/libssl.so.3",
    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    "/lib/aarch64-linux-gnu/libssl.so.3",
    "/usr/lib/aarch64-linux-gnu/libssl.so.3",
    "/usr/lib64/libssl.so.3",
    "/lib64/libssl.so.3",
    "/usr/lib/libssl.so.3",
    "/lib/libssl.so.3",
    "/lib/x86_64-linux-gnu/libssl.so.1.1",
    "/usr/lib/x86_64-linux-gnu/libssl.so.1.1",
    "/usr/lib64/libssl.so.1.1",
    "/usr/lib/libssl.so.1.1",
];

/// Identity of a library file: (device major, device minor, inode), as /proc/PID/maps shows it.
pub type FileId = (u32, u32, u64);

/// OpenSSL's libssl (`libssl.so`, `libssl.so.3`, `libssl.so.1.1`); not NSS's `libssl3.so`.
pub fn is_libssl(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name == "libssl.so" || name.starts_with("libssl.so.")
}

fn dev_major(dev: u64) -> u32 {
    (((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)) as u32
}

fn dev_minor(dev: u64) -> u32 {
    ((dev & 0xff) | ((dev >> 12) & !0xff)) as u32
}

pub fn file_id(path: &Path) -> Option<FileId> {
    let m = fs::metadata(path).ok()?;
    Some((dev_major(m.dev()), dev_minor(m.dev()), m.ino()))
}

/// libssl mappings of one process's maps text: (file id, path as the process sees it).
pub fn libssl_in_maps(maps: &str) -> Vec<(FileId, String)> {
    let mut out: Vec<(FileId, String)> = Vec::new();
    for line in maps.lines() {
        // address perms offset dev inode path
        let mut f = line.split_ascii_whitespace();
        let (Some(_), Some(_), Some(_), Some(dev), Some(inode), Some(path)) =
            (f.next(), f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        if !path.starts_with('/') || !is_libssl(path) {
            continue;
        }
        let Some((maj, min)) = dev.split_once(':') else {
            continue;
        };
        let (Ok(maj), Ok(min), Ok(ino)) = (
            u32::from_str_radix(maj, 16),
            u32::from_str_radix(min, 16),
            inode.parse::<u64>(),
        ) else {
            continue;
        };
        let id = (maj, min, ino);
        if ino != 0 && !out.iter().any(|(i, _)| *i == id) {
            out.push((id, path.to_string()));
        }
    }
    out
}

/// The system libssl files: common paths and the dynamic linker's cache (`ldconfig -p`).
pub fn system_libssl() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = SYSTEM_CANDIDATES.iter().map(PathBuf::from).collect();
    if let Ok(out) = std::process::Command::new("ldconfig").arg("-p").output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "	libssl.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl.so.3"
            if let Some((_, p)) = line.split_once("=> ") {
                if is_libssl(p.trim()) {
                    paths.push(PathBuf::from(p.trim()));
                }
            }
        }
    }
    let mut seen = HashSet::new();
    paths
        .into_iter()
        .filter(|p| file_id(p).is_some_and(|id| seen.insert(id)))
        .collect()
}

impl L7Sensor {
    /// Entry and return uprobes on the four SSL calls of the libssl at `path` (every process).
    /// Fails unless at least SSL_read and SSL_write are attached.
    pub fn attach_libssl(&self, path: &Path) -> Result<Vec<Link>, String> {
        let mut links = Vec::new();
        let mut missing = Vec::new();
        for (func, cookie) in SSL_FUNCTIONS {
            for retprobe in [false, true] {
                let prog = if retprobe {
                    &self.skel.progs.tls_exit
                } else {
                    &self.skel.progs.tls_enter
                };
                let opts = UprobeOpts {
                    func_name: Some((*func).into()),
                    retprobe,
                    cookie: *cookie,
                    ..Default::default()
                };
                match prog.attach_uprobe_with_opts(-1, path, 0, opts) {
                    Ok(l) => links.push(l),
                    Err(e) => missing.push(format!(
                        "{func}{}: {e}",
                        if retprobe { " (return)" } else { "" }
                    )),
                }
            }
        }
        // SSL_read/SSL_write are the four first links; the _ex forms exist only in OpenSSL ≥ 1.1.1.
        if missing.iter().any(|m| {
            m.starts_with("SSL_read:")
                || m.starts_with("SSL_write:")
                || m.starts_with("SSL_read (")
                || m.starts_with("SSL_write (")
        }) {
            return Err(format!(
                "uprobes on {} failed: {}",
                path.display(),
                missing.join("; ")
            ));
        }
        Ok(links)
    }
}

struct Attached {
    /// The path it was attached through (as first found).
    path: String,
    /// Processes mapping it; the system library stays attached with none.
    users: HashSet<u32>,
    system: bool,
    _links: Vec<Link>,
}

/// Which libssl files carry the TLS uprobes, kept in step with the processes on the node.
#[derive(Default)]
pub struct LibsslTracker {
    attached: HashMap<FileId, Attached>,
    /// Files that could not be attached (not OpenSSL, stripped…), not retried.
    failed: HashMap<FileId, String>,
    /// pid → identity of its executable at the last scan (an exec changes it).
    procs: HashMap<u32, Option<FileId>>,
    scans: u32,
    pub warnings: Vec<String>,
}

impl LibsslTracker {
    /// Attach the system libssl. A missing system libssl is no error (processes may bring
    /// their own); a failed attach is a warning.
    pub fn start(sensor: &L7Sensor) -> LibsslTracker {
        let mut t = LibsslTracker::default();
        let system = system_libssl();
        if system.is_empty() {
            t.warnings.push(
                "tls: no system libssl found (ldconfig -p, common paths): only libssl files mapped by processes are traced".into(),
            );
        }
        for p in system {
            if let Some(id) = file_id(&p) {
                t.attach(sensor, id, &p, None, true);
            }
        }
        t.rescan(sensor);
        t
    }

    fn attach(
        &mut self,
        sensor: &L7Sensor,
        id: FileId,
        path: &Path,
        user: Option<u32>,
        system: bool,
    ) {
        if let Some(a) = self.attached.get_mut(&id) {
            a.users.extend(user);
            return;
        }
        if self.failed.contains_key(&id) {
            return;
        }
        match sensor.attach_libssl(path) {
            Ok(links) => {
                tracing::info!("tls: uprobes attached to {}", path.display());
                self.attached.insert(
                    id,
                    Attached {
                        path: path.display().to_string(),
                        users: user.into_iter().collect(),
                        system,
                        _links: links,
                    },
                );
            }
            Err(e) => {
                tracing::warn!("tls: {e}");
                self.warnings.push(format!("tls: {e}"));
                self.failed.insert(id, e);
            }
        }
    }

    /// Look at new processes (and exec'd ones; all of them every FULL_RESCAN_EVERY scans):
    /// attach the libssl files they map, detach those no process maps any more.
    pub fn rescan(&mut self, sensor: &L7Sensor) {
        let full = self.scans.is_multiple_of(FULL_RESCAN_EVERY);
        self.scans = self.scans.wrapping_add(1);
        let mut alive = HashSet::new();
        let Ok(dir) = fs::read_dir("/proc") else {
            return;
        };
        for ent in dir.flatten() {
            let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            alive.insert(pid);
            let exe = file_id(&PathBuf::from(format!("/proc/{pid}/exe")));
            let known = self.procs.get(&pid);
            if !full && known == Some(&exe) {
                continue;
            }
            self.procs.insert(pid, exe);
            let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
                continue;
            };
            let libs = libssl_in_maps(&maps);
            for a in self.attached.values_mut() {
                a.users.remove(&pid);
            }
            for (id, path) in libs {
                // Through the process's root: a container's libssl is not in our mount namespace.
                let through_root = PathBuf::from(format!("/proc/{pid}/root{path}"));
                let known = self.attached.contains_key(&id) || self.failed.contains_key(&id);
                if !known && file_id(&through_root) != Some(id) {
                    continue;
                }
                self.attach(sensor, id, &through_root, Some(pid), false);
            }
        }
        self.procs.retain(|pid, _| alive.contains(pid));
        self.attached.retain(|_, a| {
            a.users.retain(|p| alive.contains(p));
            let keep = a.system || !a.users.is_empty();
            if !keep {
                tracing::info!("tls: uprobes detached from {} (no process maps it)", a.path);
            }
            keep
        });
    }

    /// Attached libssl paths and how many processes map each (system ones marked).
    pub fn attached(&self) -> BTreeMap<String, usize> {
        self.attached
            .values()
            .map(|a| {
                let name = if a.system {
                    format!("{} (system)", a.path)
                } else {
                    a.path.clone()
                };
                (name, a.users.len())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_give_libssl_ids_once() {
        let maps = "\
7f0000000000-7f0000001000 r--p 00000000 fd:01 1234 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f0000001000-7f0000002000 r-xp 00001000 fd:01 1234 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f0000003000-7f0000004000 r-xp 00001000 fd:01 99 /usr/lib/x86_64-linux-gnu/libssl3.so
7f0000005000-7f0000006000 r-xp 00001000 00:2a 77 /opt/app/lib/libssl.so.1.1
7f0000007000-7f0000008000 rw-p 00000000 00:00 0 
7ffd00000000-7ffd00001000 rw-p 00000000 00:00 0 [stack]
";
        assert_eq!(
            libssl_in_maps(maps),
            vec![
                (
                    (0xfd, 1, 1234),
                    "/usr/lib/x86_64-linux-gnu/libssl.so.3".to_string()
                ),
                ((0, 0x2a, 77), "/opt/app/lib/libssl.so.1.1".to_string()),
            ]
        );
    }

    #[test]
    fn nss_libssl3_is_not_openssl() {
        assert!(is_libssl("/lib/libssl.so.3"));
        assert!(is_libssl("/lib/libssl.so"));
        assert!(!is_libssl("/lib/libssl3.so"));
        assert!(!is_libssl("/lib/libssl.so3x/other"));
    }

    #[test]
    fn device_numbers_split_like_the_kernel() {
        // makedev(0xfd, 1) and makedev(259, 70000)
        assert_eq!((dev_major(0xfd01), dev_minor(0xfd01)), (0xfd, 1));
        let (ma, mi) = (259u64, 70000u64);
        let dev = ((ma & 0xfff) << 8) | ((ma & !0xfff) << 32) | (mi & 0xff) | ((mi & !0xff) << 12);
        assert_eq!((dev_major(dev), dev_minor(dev)), (259, 70000));
    }
}
