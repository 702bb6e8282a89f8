//! Enrichment of kernel records with process and container identity (design §5 "Enrichment").
//!
//! - [`process::ProcessTable`]: pid → comm/ppid/exe/cgroup, from /proc at start and then from
//!   the kernel's exec/exit events, with a grace period for exited processes.
//! - [`cgroup::CgroupResolver`]: cgroup v2 id → path, and the path → container id / pod UID
//!   parsers ([`cgroup::container_id`], [`cgroup::pod_uid`]).
//! - [`Enricher`]: both behind locks, shareable as `Arc<Enricher>` between the agent's threads.
//!
//! Plain synchronous code: every operation is a hash lookup, except the rare /proc read of an
//! unknown pid and the rate-limited cgroup tree walk for an unknown cgroup id.

pub mod cgroup;
pub mod clock;
pub mod error;
pub mod process;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use fathom_model::ProcessInfo;

pub use cgroup::{container_id, pod_uid, CgroupResolver, CgroupResolverConfig, CgroupStats};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{EnrichError, Result};
pub use process::{ProcessEntry, ProcessTable, ProcessTableConfig, ProcessTableStats, ScanStats};

#[derive(Debug, Clone, Default)]
pub struct EnricherConfig {
    /// Also holds `proc_root` and the optional `cgroup2_root` override used by both halves.
    pub process: ProcessTableConfig,
    pub cgroup: CgroupResolverConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnricherStats {
    pub processes: ProcessTableStats,
    /// `None` when the host has no cgroup2 mount.
    pub cgroups: Option<CgroupStats>,
}

/// Process and container identity for the agent. All methods take `&self`; the two halves have
/// their own locks, never held together, so a cgroup tree walk does not block process lookups.
#[derive(Debug)]
pub struct Enricher {
    clock: Arc<dyn Clock>,
    processes: Mutex<ProcessTable>,
    cgroups: Option<Mutex<CgroupResolver>>,
}

/// Poisoning is ignored rather than propagated to every later caller: the tables are caches,
/// and no update leaves them half-done at a point where code can panic (only allocation can).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Enricher {
    /// Build the tables and scan `config.process.proc_root`. Fails only if the proc root cannot
    /// be listed. Attach the exec/exit probes before calling this (see `ProcessTable::scan_proc`).
    pub fn new(config: EnricherConfig) -> Result<Self> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    pub fn with_clock(config: EnricherConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        let proc_root = config.process.proc_root.clone();
        let mut table = ProcessTable::with_clock(config.process, clock.clone());
        table.scan_proc(&proc_root)?;
        let cgroups = table.cgroup2_root().map(|root| {
            let mut r = CgroupResolver::with_clock(root, config.cgroup, clock.clone());
            // The scan already paired ids with paths for every cgroup that has a process; this
            // saves the first walk in the common case.
            for e in table.entries() {
                if let (Some(id), Some(path)) = (e.cgroup_id, &e.cgroup_path) {
                    r.insert(id, path.clone());
                }
            }
            Mutex::new(r)
        });
        Ok(Enricher {
            clock,
            processes: Mutex::new(table),
            cgroups,
        })
    }

    /// Identity of the process behind a kernel record. `comm` and `cgroup_id` are what the
    /// kernel reported with the record and take precedence (see `ProcessTable::resolve`);
    /// `container_id` comes from the cgroup path.
    pub fn process_info(
        &self,
        pid: u32,
        tid: Option<u32>,
        comm: Option<&str>,
        cgroup_id: Option<u64>,
    ) -> ProcessInfo {
        let mut info = lock(&self.processes).resolve(pid, tid, comm, cgroup_id);
        if info.container_id.is_none() {
            if let (Some(id), Some(cg)) = (info.cgroup_id, &self.cgroups) {
                info.container_id = lock(cg).container_id_of(id);
            }
        }
        info
    }

    /// Kernel exec event (see `ProcessTable::on_exec`).
    pub fn on_exec(&self, pid: u32, ppid: u32, comm: &str, filename: &str, cgroup_id: Option<u64>) {
        lock(&self.processes).on_exec(pid, ppid, comm, filename, cgroup_id);
    }

    /// Kernel exit event of a whole process (see `ProcessTable::on_exit`).
    pub fn on_exit(&self, pid: u32) {
        lock(&self.processes).on_exit(pid);
    }

    /// Drop exited processes past their grace period; call every few seconds.
    pub fn expire(&self) -> usize {
        self.expire_at(self.clock.now())
    }

    pub fn expire_at(&self, now: Instant) -> usize {
        lock(&self.processes).expire(now)
    }

    /// Path of a cgroup relative to the cgroup2 root.
    pub fn cgroup_path(&self, cgroup_id: u64) -> Option<String> {
        self.cgroups
            .as_ref()
            .and_then(|cg| lock(cg).path(cgroup_id))
    }

    pub fn container_id_of_cgroup(&self, cgroup_id: u64) -> Option<String> {
        self.cgroups
            .as_ref()
            .and_then(|cg| lock(cg).container_id_of(cgroup_id))
    }

    /// Kubernetes pod UID of a cgroup, for the pod lookup that comes after enrichment.
    pub fn pod_uid_of_cgroup(&self, cgroup_id: u64) -> Option<String> {
        self.cgroups
            .as_ref()
            .and_then(|cg| lock(cg).pod_uid_of(cgroup_id))
    }

    /// The cgroup2 mount in use, if the host has one.
    pub fn cgroup2_root(&self) -> Option<std::path::PathBuf> {
        self.cgroups
            .as_ref()
            .map(|cg| lock(cg).root().to_path_buf())
    }

    /// Re-read `proc_root` (e.g. after lost exec events were reported).
    pub fn rescan_proc(&self, proc_root: &Path) -> Result<ScanStats> {
        lock(&self.processes).scan_proc(proc_root)
    }

    pub fn stats(&self) -> EnricherStats {
        EnricherStats {
            processes: lock(&self.processes).stats(),
            cgroups: self.cgroups.as_ref().map(|cg| lock(cg).stats()),
        }
    }
}

#[cfg(test)]
mod fake;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeHost;
    use std::time::Duration;

    const CID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const CID2: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    #[test]
    fn enricher_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Enricher>();
    }

    #[test]
    fn enricher_fills_container_from_scan_and_from_cgroup_id() {
        let host = FakeHost::new();
        let uid = "11112222-3333-4444-5555-666677778888";
        let pod = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
            uid.replace('-', "_")
        );
        let scope = format!("{pod}/cri-containerd-{CID}.scope");
        let scope_id = host.add_cgroup(&scope);
        host.add_process(
            100,
            "envoy",
            1,
            500,
            Some("/usr/local/bin/envoy"),
            Some(&scope),
        );
        let clock = Arc::new(ManualClock::new());
        let cfg = EnricherConfig {
            process: ProcessTableConfig {
                proc_root: host.proc.clone(),
                ..Default::default()
            },
            // Tempdir inode numbers are not allocated in increasing order like cgroup ids.
            cgroup: CgroupResolverConfig {
                monotonic_ids: false,
                ..Default::default()
            },
        };
        let e = Enricher::with_clock(cfg, clock.clone()).expect("enricher");
        assert_eq!(e.cgroup2_root(), Some(host.cg.clone()));

        let info = e.process_info(100, Some(104), None, None);
        assert_eq!(info.container_id.as_deref(), Some(CID));
        assert_eq!((info.tid, info.comm.as_str()), (Some(104), "envoy"));
        // The scan seeded the cgroup cache: no walk needed.
        assert_eq!(e.cgroup_path(scope_id).as_deref(), Some(scope.as_str()));
        assert_eq!(e.pod_uid_of_cgroup(scope_id).as_deref(), Some(uid));
        assert_eq!(e.stats().cgroups.map(|c| c.rescans), Some(0));

        // A container started after the scan: the exec event has only its cgroup id, which the
        // resolver finds by walking the tree.
        let new_scope = format!("{pod}/cri-containerd-{CID2}.scope");
        let new_id = host.add_cgroup(&new_scope);
        e.on_exec(
            200,
            150,
            "redis-server",
            "/usr/bin/redis-server",
            Some(new_id),
        );
        let info = e.process_info(200, None, Some("redis-server"), Some(new_id));
        assert_eq!(info.container_id.as_deref(), Some(CID2));
        assert_eq!(e.stats().cgroups.map(|c| c.rescans), Some(1));

        // The record's cgroup wins: the process was moved into another container's cgroup.
        let info = e.process_info(100, None, None, Some(new_id));
        assert_eq!(info.container_id.as_deref(), Some(CID2));

        // Host process in an unknown cgroup: no container, counted miss.
        let info = e.process_info(300, None, Some("kworker/0:1"), Some(u64::MAX));
        assert_eq!(
            (info.comm.as_str(), info.container_id),
            ("kworker/0:1", None)
        );
        assert_eq!(e.stats().cgroups.map(|c| c.misses), Some(1));

        // Exit → still resolvable → expired.
        e.on_exit(200);
        clock.advance(Duration::from_secs(5));
        assert_eq!(e.process_info(200, None, None, None).comm, "redis-server");
        clock.advance(process::DEFAULT_EXIT_GRACE);
        assert_eq!(e.expire(), 1);
        assert_eq!(e.stats().processes.entries, 1);
    }

    #[test]
    fn enricher_without_cgroup2() {
        let host = FakeHost::new();
        std::fs::write(host.proc.join("mounts"), "proc /proc proc rw 0 0\n").expect("write");
        let path = format!("/docker/{CID}");
        host.add_process(100, "x", 1, 5, None, Some(&path));
        let cfg = EnricherConfig {
            process: ProcessTableConfig {
                proc_root: host.proc.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        let e = Enricher::new(cfg).expect("enricher");
        assert_eq!(e.cgroup2_root(), None);
        let info = e.process_info(100, None, None, Some(77));
        // No id ↔ path mapping without the mount; the kernel's id is passed through and the
        // container id parsed from /proc/<pid>/cgroup kept.
        assert_eq!(
            (info.cgroup_id, info.container_id.as_deref()),
            (Some(77), Some(CID))
        );
        assert_eq!(e.stats().cgroups, None);
    }
}
