//! cgroup v2 id → path → container id / pod UID.
//!
//! The kernel gives us only a cgroup *id* (`bpf_get_current_cgroup_id()`): on 64-bit kernels
//! (≥ 5.5) that is the kernfs node id, which is also the inode number of the cgroup's directory
//! in the cgroup2 filesystem. So an id is turned into a path by walking the cgroup2 mount and
//! indexing directories by inode, and the path is what container runtimes encode their ids in.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{Clock, SystemClock};
use crate::error::{EnrichError, Result};

/// Default minimum time between two walks of the cgroup tree triggered by unknown ids. A flood
/// of events for a cgroup that is already gone must not turn into a flood of tree walks.
pub const DEFAULT_RESCAN_INTERVAL: Duration = Duration::from_secs(1);
/// Default bound of the id → path cache.
pub const DEFAULT_MAX_CGROUPS: usize = 65_536;

#[derive(Debug, Clone)]
pub struct CgroupResolverConfig {
    /// At most one walk per this interval is triggered by lookups of unknown ids.
    pub min_rescan_interval: Duration,
    /// Bound of the cache; ids beyond it are not cached (and counted in `CgroupStats::truncated`).
    pub max_entries: usize,
    /// Cgroup ids only grow (64-bit kernels ≥ 5.5: kernfs ids are allocated cyclically with a
    /// generation in the upper half, and never reused). That lets the resolver tell "gone for
    /// good" from "new" without walking: see `CgroupResolver::path`. Turn off for filesystems
    /// whose inode numbers are not monotonic (tests on tmpfs/ext4 trees).
    pub monotonic_ids: bool,
}

impl Default for CgroupResolverConfig {
    fn default() -> Self {
        CgroupResolverConfig {
            min_rescan_interval: DEFAULT_RESCAN_INTERVAL,
            max_entries: DEFAULT_MAX_CGROUPS,
            monotonic_ids: true,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// Ids currently cached.
    pub cached: usize,
    /// Lookups answered (from the cache, possibly after a rescan).
    pub hits: u64,
    /// Lookups of ids that stayed unknown.
    pub misses: u64,
    /// Walks of the cgroup tree done.
    pub rescans: u64,
    /// Unknown-id lookups that did not rescan because of the rate limit.
    pub rescans_suppressed: u64,
    /// Unknown-id lookups that did not rescan because the id is known to be gone for good.
    pub gone: u64,
    /// Directories that could not be read during walks (usually removed mid-walk).
    pub walk_errors: u64,
    /// Cgroups not cached because the cache was full.
    pub truncated: u64,
}

/// Maps cgroup ids to paths relative to the cgroup2 root (`/` for the root, `/a/b` below it).
/// Not internally synchronised; `Enricher` wraps it in a mutex.
#[derive(Debug)]
pub struct CgroupResolver {
    root: PathBuf,
    config: CgroupResolverConfig,
    clock: Arc<dyn Clock>,
    by_id: HashMap<u64, String>,
    last_rescan: Option<Instant>,
    /// Largest id found by the walk before the last one, when the last one was complete
    /// (no unreadable directory, nothing truncated); see `path`.
    settled_max: Option<u64>,
    /// Largest id found by the last walk, and whether that walk was complete.
    last_walk: Option<(u64, bool)>,
    stats: CgroupStats,
}

impl CgroupResolver {
    /// `root` is the cgroup2 mount point (see [`find_cgroup2_mount`]). Nothing is read until the
    /// first lookup or [`rescan`](Self::rescan).
    pub fn new(root: impl Into<PathBuf>, config: CgroupResolverConfig) -> Self {
        Self::with_clock(root, config, Arc::new(SystemClock))
    }

    pub fn with_clock(
        root: impl Into<PathBuf>,
        config: CgroupResolverConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        CgroupResolver {
            root: root.into(),
            config,
            clock,
            by_id: HashMap::new(),
            last_rescan: None,
            settled_max: None,
            last_walk: None,
            stats: CgroupStats::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cgroup's path relative to the cgroup2 root. An unknown id triggers a walk of the tree
    /// (new cgroups appear all the time: every container start), unless one was done less than
    /// `min_rescan_interval` ago.
    ///
    /// Records of a container keep arriving after it is removed, and if it lived less than a
    /// walk interval, no walk ever saw it: without care each such record would cost a full walk
    /// (rate-limited, but steadily). With monotonic ids, an id not larger than one the
    /// second-to-last walk found existed before the last walk started; if that complete walk
    /// did not find it, it was removed, and ids are never reused, so it is not looked for again.
    pub fn path(&mut self, id: u64) -> Option<String> {
        if let Some(p) = self.by_id.get(&id) {
            self.stats.hits += 1;
            return Some(p.clone());
        }
        if self.config.monotonic_ids && self.settled_max.is_some_and(|max| id <= max) {
            self.stats.gone += 1;
            self.stats.misses += 1;
            return None;
        }
        let now = self.clock.now();
        let may_rescan = match self.last_rescan {
            None => true,
            Some(last) => now.saturating_duration_since(last) >= self.config.min_rescan_interval,
        };
        if !may_rescan {
            self.stats.rescans_suppressed += 1;
            self.stats.misses += 1;
            return None;
        }
        // A failed walk (root gone) is just a miss here; `rescan` reports the error to callers
        // that ask for it directly.
        let _ = self.rescan();
        match self.by_id.get(&id) {
            Some(p) => {
                self.stats.hits += 1;
                Some(p.clone())
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Cache a mapping learnt elsewhere (e.g. from `/proc/<pid>/cgroup` during a process scan),
    /// which saves a walk later. Ignored when the cache is full.
    pub fn insert(&mut self, id: u64, path: String) {
        if self.by_id.len() < self.config.max_entries || self.by_id.contains_key(&id) {
            self.by_id.insert(id, path);
        } else {
            self.stats.truncated += 1;
        }
    }

    /// Walk the whole cgroup2 tree now; returns the number of cgroups found.
    ///
    /// Ids of cgroups that have disappeared since the last walk are kept while there is room:
    /// records about a container's last connections arrive after the container is gone, and
    /// cgroup ids are never reused on 64-bit kernels, so a stale entry cannot be wrong.
    pub fn rescan(&mut self) -> Result<usize> {
        self.last_rescan = Some(self.clock.now());
        self.stats.rescans += 1;
        let mut fresh = HashMap::new();
        let walk = walk_cgroup_tree(&self.root, self.config.max_entries, &mut fresh);
        let (found, errors, truncated) = match walk {
            Ok(w) => w,
            Err(e) => {
                // Nothing can be concluded about absent ids from a failed walk.
                self.last_walk = None;
                self.settled_max = None;
                return Err(e);
            }
        };
        self.stats.walk_errors += errors;
        self.stats.truncated += truncated;
        let walk_max = fresh.keys().copied().max().unwrap_or(0);
        let complete = errors == 0 && truncated == 0;
        self.settled_max = match (self.last_walk, complete) {
            (Some((prev_max, _)), true) => Some(prev_max),
            _ => None,
        };
        self.last_walk = Some((walk_max, complete));
        for (id, path) in self.by_id.drain() {
            if fresh.len() >= self.config.max_entries {
                break;
            }
            fresh.entry(id).or_insert(path);
        }
        self.by_id = fresh;
        self.stats.cached = self.by_id.len();
        Ok(found)
    }

    /// Container id of the cgroup with this id, if its path names one.
    pub fn container_id_of(&mut self, id: u64) -> Option<String> {
        self.path(id).and_then(|p| container_id(&p))
    }

    /// Kubernetes pod UID of the cgroup with this id, if its path names one.
    pub fn pod_uid_of(&mut self, id: u64) -> Option<String> {
        self.path(id).and_then(|p| pod_uid(&p))
    }

    pub fn stats(&self) -> CgroupStats {
        CgroupStats {
            cached: self.by_id.len(),
            ..self.stats
        }
    }
}

/// Walk `root` depth-first, recording directory inode → path. Returns (found, errors, truncated).
/// Stops descending at other filesystems, so a mount below the cgroup root cannot inject
/// inodes from elsewhere. Symlinks are not followed (cgroupfs has none).
fn walk_cgroup_tree(
    root: &Path,
    max: usize,
    out: &mut HashMap<u64, String>,
) -> Result<(usize, u64, u64)> {
    let meta = fs::symlink_metadata(root).map_err(|e| EnrichError::io(root, e))?;
    let dev = meta.dev();
    out.insert(meta.ino(), "/".to_owned());
    let (mut found, mut errors, mut truncated) = (1usize, 0u64, 0u64);
    // Iterative: cgroup trees can be deep, and recursion depth should not depend on input.
    let mut stack: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(_) => {
                errors += 1;
                continue;
            }
        };
        for entry in entries {
            let Ok(entry) = entry else {
                errors += 1;
                continue;
            };
            // d_type from readdir: avoids a stat for each of the many control files.
            match entry.file_type() {
                Ok(t) if t.is_dir() => {}
                Ok(_) => continue,
                Err(_) => {
                    errors += 1;
                    continue;
                }
            }
            let path = entry.path();
            // stat rather than readdir's d_ino: on some filesystems (overlayfs) they differ,
            // and st_ino is what the kernel's cgroup id corresponds to on cgroupfs.
            let m = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(_) => {
                    errors += 1;
                    continue;
                }
            };
            if m.dev() != dev {
                continue;
            }
            let child_rel = format!("{rel}/{}", entry.file_name().to_string_lossy());
            if out.len() < max {
                out.insert(m.ino(), child_rel.clone());
                found += 1;
            } else {
                truncated += 1;
            }
            stack.push((path, child_rel));
        }
    }
    Ok((found, errors, truncated))
}

/// The first cgroup2 mount point listed in `<proc_root>/mounts` (i.e. `/proc/self/mounts`).
/// Hybrid hosts mount it at /sys/fs/cgroup/unified, pure v2 hosts at /sys/fs/cgroup, containers
/// elsewhere, which is why it is looked up rather than assumed.
pub fn find_cgroup2_mount(proc_root: &Path) -> Result<Option<PathBuf>> {
    let path = proc_root.join("mounts");
    let text = fs::read_to_string(&path).map_err(|e| EnrichError::io(&path, e))?;
    Ok(parse_cgroup2_mount(&text))
}

/// Parse the text of /proc/mounts (fstab format: `source target fstype options dump pass`).
pub fn parse_cgroup2_mount(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        let _source = fields.next()?;
        let target = fields.next()?;
        let fstype = fields.next()?;
        (fstype == "cgroup2").then(|| PathBuf::from(unescape_mount_field(target)))
    })
}

/// /proc/mounts escapes space, tab, newline and backslash in paths as `\ooo` octal.
fn unescape_mount_field(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The container id a cgroup path names, for docker, containerd (CRI), cri-o and podman, with
/// both the systemd and the cgroupfs cgroup drivers. The innermost match wins (docker-in-docker,
/// kind nodes that are themselves containers). Conmon scopes (`crio-conmon-…`,
/// `libpod-conmon-…`) are the runtime's monitor, not the container, and do not match.
pub fn container_id(path: &str) -> Option<String> {
    path.split('/')
        .rev()
        .find_map(container_id_of_component)
        .map(str::to_owned)
}

fn container_id_of_component(c: &str) -> Option<&str> {
    // `kubepods-…-pod<uid>.slice:cri-containerd:<id>`: the OCI `cgroupsPath` notation of the
    // systemd driver, which shows up as a literal directory name when the runtime uses cgroupfs
    // while kubelet uses systemd (a common misconfiguration).
    if c.contains(':') {
        let parts: Vec<&str> = c.split(':').collect();
        return match parts.as_slice() {
            [_, _, id] if is_container_hex(id) => Some(id),
            _ => None,
        };
    }
    let name = c.strip_suffix(".scope").unwrap_or(c);
    if is_container_hex(name) {
        // cgroupfs driver: /docker/<id>, /kubepods/<qos>/pod<uid>/<id>, /ecs/<task>/<id>.
        return Some(name);
    }
    // systemd driver scopes, and cri-o's cgroupfs `crio-<id>`. What follows the prefix must be
    // the bare id, which is what rules out `crio-conmon-<id>` and `libpod-conmon-<id>`.
    ["docker-", "cri-containerd-", "crio-", "libpod-"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .filter(|id| is_container_hex(id))
}

fn is_container_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The Kubernetes pod UID a cgroup path names:
/// systemd driver `kubepods-<qos>-pod<uid>.slice` (with `_` for `-`, because systemd uses `-`
/// as its slice hierarchy separator; also kind's `kubelet-kubepods-…`), or cgroupfs driver
/// `/kubepods[/<qos>]/pod<uid>`. Static pods have a 32-hex hash instead of a UUID; both match.
pub fn pod_uid(path: &str) -> Option<String> {
    let mut below_kubepods = false;
    let mut found = None;
    for c in path.split('/') {
        // `…-pod<uid>.slice:cri-containerd:<id>` (see `container_id_of_component`).
        let c = c.split_once(':').map_or(c, |(slice, _)| slice);
        if let Some(stem) = c.strip_suffix(".slice") {
            if let Some(idx) = stem.rfind("-pod") {
                let (prefix, uid) = (&stem[..idx], &stem[idx + 4..]);
                if prefix.contains("kubepods") && is_pod_uid(uid) {
                    found = Some(uid.replace('_', "-"));
                }
            }
        } else if below_kubepods {
            if let Some(uid) = c.strip_prefix("pod").filter(|u| is_pod_uid(u)) {
                found = Some(uid.to_owned());
            }
        }
        if c.contains("kubepods") {
            below_kubepods = true;
        }
    }
    found
}

fn is_pod_uid(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const ID: &str = "4a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
    const ID2: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// (path, container id, pod uid). Samples are the shapes real hosts produce.
    fn samples() -> Vec<(String, Option<&'static str>, Option<&'static str>)> {
        let uid = "5f3c1a9e-2b7d-4c11-9e0a-6d2f8b4c7a10";
        let uid_ = "5f3c1a9e_2b7d_4c11_9e0a_6d2f8b4c7a10";
        vec![
            // docker, cgroupfs driver (v1 hosts, Docker Desktop)
            (format!("/docker/{ID}"), Some(ID), None),
            // docker, systemd driver
            (format!("/system.slice/docker-{ID}.scope"), Some(ID), None),
            // containerd via CRI, systemd driver (kubeadm default)
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope"),
                Some(ID),
                Some(uid),
            ),
            // guaranteed QoS has no QoS slice level
            (format!("/kubepods.slice/kubepods-pod{uid_}.slice/cri-containerd-{ID}.scope"), Some(ID), Some(uid)),
            // cgroupfs driver, kubelet + containerd
            (format!("/kubepods/burstable/pod{uid}/{ID}"), Some(ID), Some(uid)),
            (format!("/kubepods/pod{uid}/{ID}"), Some(ID), Some(uid)),
            // cri-o, systemd driver
            (
                format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/crio-{ID}.scope"),
                Some(ID),
                Some(uid),
            ),
            // cri-o's monitor process: not the container
            (
                format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/crio-conmon-{ID}.scope"),
                None,
                Some(uid),
            ),
            // cri-o, cgroupfs driver
            (format!("/kubepods/besteffort/pod{uid}/crio-{ID}"), Some(ID), Some(uid)),
            // podman (root), and the split-cgroup `container` leaf of crun
            (format!("/machine.slice/libpod-{ID}.scope"), Some(ID), None),
            (format!("/machine.slice/libpod-{ID}.scope/container"), Some(ID), None),
            (format!("/machine.slice/libpod-conmon-{ID}.scope"), None, None),
            // rootless podman
            (
                format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"),
                Some(ID),
                None,
            ),
            // kind: the node is a docker container, pods nested inside with kubelet- prefixes
            (
                format!("/system.slice/docker-{ID2}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{uid_}.slice/cri-containerd-{ID}.scope"),
                Some(ID),
                Some(uid),
            ),
            // docker-in-docker: innermost wins
            (format!("/docker/{ID2}/docker/{ID}"), Some(ID), None),
            // runtime/kubelet driver mismatch: OCI cgroupsPath as a literal name
            (
                format!("/system.slice/containerd.service/kubepods-burstable-pod{uid_}.slice:cri-containerd:{ID}"),
                Some(ID),
                Some(uid),
            ),
            // the example of the brief; static-pod style hash UID
            ("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234_5678.slice".into(), None, Some("1234-5678")),
            (
                "/kubepods/burstable/pod6b6ee5ed4ed4c5e2c1d2c5d0e0b7e0a0".into(),
                None,
                Some("6b6ee5ed4ed4c5e2c1d2c5d0e0b7e0a0"),
            ),
            // negatives
            ("/".into(), None, None),
            ("/init.scope".into(), None, None),
            ("/system.slice/docker.service".into(), None, None),
            ("/system.slice/containerd.service".into(), None, None),
            ("/user.slice/user-1000.slice/session-3.scope".into(), None, None),
            ("/kubepods.slice/kubepods-besteffort.slice".into(), None, None),
            // a 63-hex id, an upper-case id, a 65-hex id: not ids
            (format!("/docker/{}", &ID[1..]), None, None),
            (format!("/docker/{}", ID.to_uppercase()), None, None),
            (format!("/system.slice/docker-{ID}0.scope"), None, None),
            // "pod…" outside kubepods is just a name
            (format!("/system.slice/pod{uid}"), None, None),
        ]
    }

    #[test]
    fn container_id_and_pod_uid_table() {
        let samples = samples();
        assert!(samples.len() >= 15);
        for (path, cid, uid) in &samples {
            assert_eq!(container_id(path).as_deref(), *cid, "container_id({path})");
            assert_eq!(pod_uid(path).as_deref(), *uid, "pod_uid({path})");
        }
    }

    #[test]
    fn parse_mounts_hybrid_pure_and_escaped() {
        let hybrid = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
                      cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(
            parse_cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let pure = "proc /proc proc rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n";
        assert_eq!(
            parse_cgroup2_mount(pure),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        let v1_only = "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n";
        assert_eq!(parse_cgroup2_mount(v1_only), None);
        let escaped = "none /tmp/my\\040cg cgroup2 rw 0 0\n";
        assert_eq!(
            parse_cgroup2_mount(escaped),
            Some(PathBuf::from("/tmp/my cg"))
        );
        assert_eq!(
            unescape_mount_field("a\\13"),
            "a\\13",
            "truncated escape kept literally"
        );
        assert_eq!(parse_cgroup2_mount("garbage\n\n"), None);
    }

    fn ino(p: &Path) -> u64 {
        fs::metadata(p).expect("stat test dir").ino()
    }

    #[test]
    fn resolves_fake_tree_and_rate_limits_rescans() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let scope = root.join("system.slice").join(format!("docker-{ID}.scope"));
        fs::create_dir_all(&scope).expect("mkdir");
        fs::write(root.join("cgroup.procs"), "").expect("write file");
        let clock = Arc::new(ManualClock::new());
        // Inode numbers of a tempdir are not allocated in increasing order like cgroup ids.
        let cfg = CgroupResolverConfig {
            monotonic_ids: false,
            ..Default::default()
        };
        let mut r = CgroupResolver::with_clock(root, cfg, clock.clone());

        assert_eq!(r.path(ino(root)).as_deref(), Some("/"));
        let scope_path = format!("/system.slice/docker-{ID}.scope");
        assert_eq!(r.path(ino(&scope)).as_deref(), Some(scope_path.as_str()));
        assert_eq!(r.container_id_of(ino(&scope)).as_deref(), Some(ID));
        assert_eq!(r.stats().rescans, 1, "one walk served all known ids");
        // Files are not cgroups.
        assert_eq!(r.path(ino(&root.join("cgroup.procs"))), None);

        // A cgroup created after the walk: the rate limit holds off a second walk…
        let late = root.join("late");
        fs::create_dir(&late).expect("mkdir");
        assert_eq!(r.path(ino(&late)), None);
        let s = r.stats();
        assert_eq!((s.rescans, s.rescans_suppressed), (1, 2));
        // …until the interval has passed.
        clock.advance(DEFAULT_RESCAN_INTERVAL);
        assert_eq!(r.path(ino(&late)).as_deref(), Some("/late"));
        assert_eq!(r.stats().rescans, 2);

        // A removed cgroup stays resolvable (late records about it).
        let gone = ino(&scope);
        fs::remove_dir(&scope).expect("rmdir");
        clock.advance(DEFAULT_RESCAN_INTERVAL);
        r.rescan().expect("rescan");
        assert_eq!(r.path(gone).as_deref(), Some(scope_path.as_str()));
        assert_eq!(r.stats().misses, 2);
    }

    #[test]
    fn ids_known_gone_do_not_trigger_walks() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("a")).expect("mkdir");
        let clock = Arc::new(ManualClock::new());
        let walk_twice = |monotonic_ids: bool| {
            let cfg = CgroupResolverConfig {
                monotonic_ids,
                ..Default::default()
            };
            let mut r = CgroupResolver::with_clock(dir.path(), cfg, clock.clone());
            r.rescan().expect("walk 1");
            r.rescan().expect("walk 2");
            clock.advance(DEFAULT_RESCAN_INTERVAL);
            r
        };
        // Inode 1 is never a directory on ext4/tmpfs, and lies below every id found, so with
        // monotonic ids it must be a cgroup that came and went between walks.
        let mut r = walk_twice(true);
        assert_eq!(r.path(1), None);
        let s = r.stats();
        assert_eq!((s.rescans, s.gone, s.misses), (2, 1, 1));
        // An id above everything seen may be new: that still walks.
        assert_eq!(r.path(u64::MAX), None);
        assert_eq!(r.stats().rescans, 3);

        let mut r = walk_twice(false);
        assert_eq!(r.path(1), None);
        assert_eq!((r.stats().rescans, r.stats().gone), (3, 0));
    }

    #[test]
    fn cache_is_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..5 {
            fs::create_dir(dir.path().join(format!("c{i}"))).expect("mkdir");
        }
        let cfg = CgroupResolverConfig {
            max_entries: 3,
            ..Default::default()
        };
        let mut r = CgroupResolver::new(dir.path(), cfg);
        r.rescan().expect("rescan");
        let s = r.stats();
        assert_eq!(s.cached, 3);
        assert_eq!(s.truncated, 3);
        r.insert(u64::MAX, "/x".into());
        assert_eq!(r.stats().cached, 3);
    }

    #[test]
    fn missing_root_is_an_error_and_a_miss() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = CgroupResolver::new(dir.path().join("nope"), CgroupResolverConfig::default());
        assert!(r.rescan().is_err());
        assert_eq!(r.path(42), None);
    }
}
