//! What this kernel lets Fathom do, learnt by trying rather than by version numbers: each
//! optional hook kind is loaded and attached alone from probe.bpf.c. Missing features are
//! reported with what Fathom does instead, never a crash.

use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{TracepointCategory, UprobeOpts};
use serde::Serialize;

use crate::skel::probe::ProbeSkelBuilder;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Feature {
    pub name: &'static str,
    pub available: bool,
    /// Why it is missing (the kernel's error), or what was found.
    pub detail: String,
    /// What Fathom uses it for, and what it does without it.
    pub impact: &'static str,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct FeatureReport {
    pub kernel: String,
    pub features: Vec<Feature>,
}

impl FeatureReport {
    pub fn has(&self, name: &str) -> bool {
        self.features.iter().any(|f| f.name == name && f.available)
    }

    pub fn missing(&self) -> impl Iterator<Item = &Feature> {
        self.features.iter().filter(|f| !f.available)
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The cgroup v2 mount point, from /proc/mounts (hybrid hosts mount it at
/// /sys/fs/cgroup/unified, pure v2 hosts at /sys/fs/cgroup).
pub fn cgroup2_mount() -> Option<PathBuf> {
    mount_of_type("cgroup2")
}

pub fn mount_of_type(fstype: &str) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        let (_dev, path, ty) = (it.next()?, it.next()?, it.next()?);
        (ty == fstype).then(|| PathBuf::from(unescape_mount_path(path)))
    })
}

/// /proc/mounts escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(p: &str) -> String {
    p.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Mount tracefs (classic tracepoints are found through it) and bpffs (pinning) where they are
/// missing. Returns what was done, for the log; failures are reported, not fatal: the probe
/// that follows says what cannot work without them.
pub fn ensure_mounts() -> Vec<String> {
    let mut done = Vec::new();
    let wanted = [("tracefs", "/sys/kernel/tracing"), ("bpf", "/sys/fs/bpf")];
    for (fstype, target) in wanted {
        if mount_of_type(fstype).is_some() {
            continue;
        }
        let (Ok(src), Ok(tgt), Ok(ty)) = (
            std::ffi::CString::new(fstype),
            std::ffi::CString::new(target),
            std::ffi::CString::new(fstype),
        ) else {
            continue;
        };
        let _ = std::fs::create_dir_all(target);
        // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
        let rc =
            unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
        if rc == 0 {
            done.push(format!("mounted {fstype} on {target}"));
        } else {
            done.push(format!(
                "could not mount {fstype} on {target}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    done
}

fn libc_path() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
        .map(PathBuf::from)
}

type ProbeFn = fn(&crate::skel::probe::ProbeSkel<'_>) -> Result<libbpf_rs::Link, String>;

/// Load probe.bpf.c with only `prog` enabled, then attach it with `attach`.
fn try_program(prog: &str, attach: ProbeFn) -> Result<(), String> {
    let mut storage = MaybeUninit::uninit();
    let mut open = ProbeSkelBuilder::default()
        .open(&mut storage)
        .map_err(|e| e.to_string())?;
    for mut p in open.open_object_mut().progs_mut() {
        let name = p.name().to_string_lossy().into_owned();
        p.set_autoload(name == prog);
    }
    let skel = open.load().map_err(|e| format!("load: {e}"))?;
    let link = attach(&skel)?;
    drop(link);
    Ok(())
}

fn feature(name: &'static str, impact: &'static str, r: Result<String, String>) -> Feature {
    match r {
        Ok(detail) => Feature {
            name,
            available: true,
            detail,
            impact,
        },
        Err(detail) => Feature {
            name,
            available: false,
            detail,
            impact,
        },
    }
}

fn path_feature(name: &'static str, impact: &'static str, path: &Path) -> Feature {
    let r = if path.exists() {
        Ok(path.display().to_string())
    } else {
        Err(format!("{} not found", path.display()))
    };
    feature(name, impact, r)
}

pub fn probe() -> FeatureReport {
    crate::sensors::install_libbpf_print();
    let mut f = vec![
        path_feature(
            "btf",
            "CO-RE relocations; without it no program can load",
            Path::new("/sys/kernel/btf/vmlinux"),
        ),
        feature(
            "bpffs",
            "pinning maps under /sys/fs/bpf/fathom so state survives an agent restart",
            mount_of_type("bpf")
                .map(|p| p.display().to_string())
                .ok_or_else(|| "not mounted (mount -t bpf bpf /sys/fs/bpf)".into()),
        ),
        feature(
            "cgroup2",
            "process attribution (sock_create/connect/sendmsg/skb hooks) and lab pods",
            cgroup2_mount()
                .map(|p| p.display().to_string())
                .ok_or_else(|| "no cgroup2 mount in /proc/mounts".into()),
        ),
    ];
    let probes: [(&'static str, &'static str, &str, ProbeFn); 9] = [
        (
            "tracepoint",
            "socket lifecycle, accept and exec/exit events",
            "probe_tracepoint",
            |s| {
                s.progs
                    .probe_tracepoint
                    .attach_tracepoint(
                        TracepointCategory::Custom("sock".into()),
                        "inet_sock_set_state",
                    )
                    .map_err(|e| e.to_string())
            },
        ),
        (
            "tp_btf",
            "typed socket tracepoint (cheaper, gives socket cookies); else the classic tracepoint",
            "probe_tp_btf",
            |s| s.progs.probe_tp_btf.attach().map_err(|e| e.to_string()),
        ),
        (
            "raw_tracepoint",
            "raw tracepoints for future hooks; not required",
            "probe_raw_tp",
            |s| {
                s.progs
                    .probe_raw_tp
                    .attach_raw_tracepoint("inet_sock_set_state")
                    .map_err(|e| e.to_string())
            },
        ),
        (
            "kfree_skb",
            "kernel drop reasons (skb/kfree_skb tracepoint)",
            "probe_kfree_skb",
            |s| {
                s.progs
                    .probe_kfree_skb
                    .attach_tracepoint(TracepointCategory::Custom("skb".into()), "kfree_skb")
                    .map_err(|e| e.to_string())
            },
        ),
        (
            "kprobe",
            "optional finer-grained hooks; Fathom uses tracepoints instead",
            "probe_kprobe",
            |s| {
                s.progs
                    .probe_kprobe
                    .attach_kprobe(false, "tcp_connect")
                    .map_err(|e| e.to_string())
            },
        ),
        (
            "fentry",
            "optional cheaper function hooks; Fathom uses tracepoints instead",
            "probe_fentry",
            |s| {
                s.progs
                    .probe_fentry
                    .attach_trace()
                    .map_err(|e| e.to_string())
            },
        ),
        (
            "bpf_lsm",
            "optional in-kernel enforcement of process rules; cgroup hooks are used instead",
            "probe_lsm",
            |s| s.progs.probe_lsm.attach_lsm().map_err(|e| e.to_string()),
        ),
        (
            "uprobe",
            "TLS plaintext from libssl (SSL_read/SSL_write)",
            "probe_uprobe",
            |s| {
                let libc = libc_path().ok_or("libc not found in /proc/self/maps")?;
                let opts = UprobeOpts {
                    func_name: Some("getpid".into()),
                    ..Default::default()
                };
                s.progs
                    .probe_uprobe
                    .attach_uprobe_with_opts(std::process::id() as i32, libc, 0, opts)
                    .map_err(|e| e.to_string())
            },
        ),
        (
            "xdp",
            "XDP shield (blocklists, rate limits)",
            "probe_xdp",
            |_| Err("load-only".into()),
        ),
    ];
    for (name, impact, prog, attach) in probes {
        let r = if name == "xdp" {
            // Loading is the probe: attaching XDP anywhere would touch real traffic.
            try_program(prog, |_| Err("skip".into())).or_else(|e| {
                if e == "skip" {
                    Ok(())
                } else {
                    Err(e)
                }
            })
        } else {
            try_program(prog, attach)
        };
        f.push(feature(name, impact, r.map(|()| "ok".to_string())));
    }
    FeatureReport {
        kernel: kernel_release(),
        features: f,
    }
}

/// One line per missing feature, for the agent's start-up log.
pub fn describe_missing(r: &FeatureReport) -> Vec<String> {
    r.missing()
        .map(|f| format!("{} not available ({}): {}", f.name, f.detail, f.impact))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_unescape() {
        assert_eq!(unescape_mount_path("/a\\040b"), "/a b");
    }
}
