//! The process table: pid (tgid) → what we know about the process, filled from /proc at start
//! and kept current by the kernel's exec/exit events.
//!
//! Records refer to processes after they are gone (a flow's last counters, an L7 response, a
//! ringbuf that was behind), so an exited process stays resolvable for a grace period before
//! `expire` drops it. The table is bounded; when full, exited processes go first.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fathom_model::ProcessInfo;

use crate::cgroup::{container_id, find_cgroup2_mount};
use crate::clock::{Clock, SystemClock};
use crate::error::{EnrichError, Result};

/// How long an exited process stays resolvable by default.
pub const DEFAULT_EXIT_GRACE: Duration = Duration::from_secs(30);
/// Default bound of the table.
pub const DEFAULT_MAX_PROCESSES: usize = 65_536;
/// How long a pid that was not found in /proc is not looked for again by default.
pub const DEFAULT_PROC_MISS_TTL: Duration = Duration::from_secs(1);
/// Bound of the "not in /proc" memory; it is only a read-saving cache, so it is simply cleared
/// when full.
const MAX_PROC_MISSES: usize = 4096;

#[derive(Debug, Clone)]
pub struct ProcessTableConfig {
    /// Where procfs is mounted; fallback lookups of unknown pids read `<proc_root>/<pid>`.
    pub proc_root: PathBuf,
    /// cgroup2 mount point; `None` = find it in `<proc_root>/mounts`.
    pub cgroup2_root: Option<PathBuf>,
    /// How long an exited process stays resolvable.
    pub exit_grace: Duration,
    /// Bound of the table (at least 1).
    pub max_entries: usize,
    /// After a fallback read of `/proc/<pid>` fails, lookups of that pid do not read /proc again
    /// for this long: flows of kernel threads or of processes gone before we saw them would
    /// otherwise cost three failed syscalls per record.
    pub proc_miss_ttl: Duration,
}

impl Default for ProcessTableConfig {
    fn default() -> Self {
        ProcessTableConfig {
            proc_root: PathBuf::from("/proc"),
            cgroup2_root: None,
            exit_grace: DEFAULT_EXIT_GRACE,
            max_entries: DEFAULT_MAX_PROCESSES,
            proc_miss_ttl: DEFAULT_PROC_MISS_TTL,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessEntry {
    /// Thread group id (what user space calls the pid).
    pub pid: u32,
    pub ppid: u32,
    /// The kernel's task comm (at most 15 bytes).
    pub comm: String,
    /// The executable's path; `None` for kernel threads, zombies, and when not readable.
    pub exe: Option<String>,
    /// cgroup v2 id (the cgroup directory's inode), as `bpf_get_current_cgroup_id()` reports it.
    pub cgroup_id: Option<u64>,
    /// cgroup v2 path relative to the cgroup2 root, when read from /proc (exec events carry
    /// only the id; `Enricher` resolves those through `CgroupResolver`).
    pub cgroup_path: Option<String>,
    /// Container id parsed from `cgroup_path`.
    pub container_id: Option<String>,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks after boot); with the pid it identifies a
    /// process across pid reuse. `None` when the entry comes from an exec event.
    pub start_time_ticks: Option<u64>,
    /// When the exit event arrived; the entry is dropped `exit_grace` later.
    pub exited_at: Option<Instant>,
}

impl ProcessEntry {
    pub fn to_process_info(&self) -> ProcessInfo {
        ProcessInfo {
            pid: self.pid,
            tid: None,
            ppid: Some(self.ppid),
            comm: self.comm.clone(),
            exe: self.exe.clone(),
            cgroup_id: self.cgroup_id,
            container_id: self.container_id.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessTableStats {
    pub entries: usize,
    /// Entries of exited processes still in their grace period.
    pub exited: usize,
    /// Entries removed to make room (exited or not).
    pub evictions: u64,
    /// Of `evictions`, entries of processes that had not exited: a sign the bound is too low.
    pub evicted_live: u64,
    /// Entries removed because their grace period ended.
    pub expired: u64,
    /// Fallback reads of `/proc/<pid>` for unknown pids.
    pub proc_reads: u64,
    /// Of `proc_reads`, those that found no (readable) process.
    pub proc_read_failures: u64,
}

/// What one `scan_proc` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Numeric entries of the proc root.
    pub found: usize,
    /// Processes added to the table.
    pub inserted: usize,
    /// Processes already known from events (completed, not replaced).
    pub merged: usize,
    /// Processes that could not be read (usually exited during the scan).
    pub failed: usize,
}

#[derive(Debug)]
struct Slot {
    entry: ProcessEntry,
    /// Insertion order, for evicting the oldest live entry when nothing has exited.
    seq: u64,
}

/// Not internally synchronised; `Enricher` wraps it in a mutex.
#[derive(Debug)]
pub struct ProcessTable {
    config: ProcessTableConfig,
    clock: Arc<dyn Clock>,
    cgroup2_root: Option<PathBuf>,
    slots: HashMap<u32, Slot>,
    /// (exited_at, pid) of exited entries: oldest first, for expiry and eviction.
    exited: BTreeSet<(Instant, u32)>,
    /// (seq, pid) of live entries: oldest first, for eviction when nothing has exited.
    live: BTreeSet<(u64, u32)>,
    next_seq: u64,
    proc_misses: HashMap<u32, Instant>,
    stats: ProcessTableStats,
}

impl ProcessTable {
    /// An empty table. The cgroup2 mount is looked up now (unless configured); without one,
    /// processes read from /proc simply have no cgroup id.
    pub fn new(config: ProcessTableConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    pub fn with_clock(mut config: ProcessTableConfig, clock: Arc<dyn Clock>) -> Self {
        config.max_entries = config.max_entries.max(1);
        let cgroup2_root = config
            .cgroup2_root
            .clone()
            .or_else(|| find_cgroup2_mount(&config.proc_root).ok().flatten());
        ProcessTable {
            config,
            clock,
            cgroup2_root,
            slots: HashMap::new(),
            exited: BTreeSet::new(),
            live: BTreeSet::new(),
            next_seq: 0,
            proc_misses: HashMap::new(),
            stats: ProcessTableStats::default(),
        }
    }

    /// The cgroup2 mount in use, if any.
    pub fn cgroup2_root(&self) -> Option<&Path> {
        self.cgroup2_root.as_deref()
    }

    pub fn config(&self) -> &ProcessTableConfig {
        &self.config
    }

    /// Read every process under `proc_root` (normally `config().proc_root`) into the table.
    ///
    /// Attach the exec/exit probes *before* scanning, so that nothing falls between the scan
    /// and the first event. Consequently a pid already known from an event is only completed
    /// (missing exe, cgroup, start time), never replaced, and an exited one is not revived.
    /// Only failing to list `proc_root` is an error; unreadable processes are counted.
    pub fn scan_proc(&mut self, proc_root: &Path) -> Result<ScanStats> {
        let dir = fs::read_dir(proc_root).map_err(|e| EnrichError::io(proc_root, e))?;
        let mut stats = ScanStats::default();
        // Many processes share a cgroup; stat each cgroup directory once per scan.
        let mut cgroup_ids: HashMap<String, Option<u64>> = HashMap::new();
        for dent in dir {
            let Ok(dent) = dent else { continue };
            let Some(pid) = dent
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            stats.found += 1;
            let read = read_process(
                proc_root,
                pid,
                self.cgroup2_root.as_deref(),
                &mut cgroup_ids,
            );
            let Ok(fresh) = read else {
                stats.failed += 1;
                continue;
            };
            match self.slots.get_mut(&pid) {
                Some(slot) => {
                    if slot.entry.exited_at.is_none() {
                        let e = &mut slot.entry;
                        e.exe = e.exe.take().or(fresh.exe);
                        e.start_time_ticks = e.start_time_ticks.or(fresh.start_time_ticks);
                        // The path is only valid for the id it was read with.
                        if e.cgroup_id.is_none() || e.cgroup_id == fresh.cgroup_id {
                            e.cgroup_id = fresh.cgroup_id;
                            e.cgroup_path = e.cgroup_path.take().or(fresh.cgroup_path);
                            e.container_id = e.container_id.take().or(fresh.container_id);
                        }
                    }
                    stats.merged += 1;
                }
                None => {
                    self.insert(fresh);
                    stats.inserted += 1;
                }
            }
        }
        Ok(stats)
    }

    /// A process called execve. `filename` is the path the kernel exec'd (bprm->filename);
    /// `cgroup_id` is the kernel's (`None` or `Some(0)` = unknown).
    pub fn on_exec(
        &mut self,
        pid: u32,
        ppid: u32,
        comm: &str,
        filename: &str,
        cgroup_id: Option<u64>,
    ) {
        let cgroup_id = cgroup_id.filter(|&id| id != 0);
        // A relative filename (`./run.sh`) says little; the exe link is still readable while
        // the process we are told about is running. Absolute names are taken as they are, to
        // keep the event path free of syscalls.
        let exe = if filename.starts_with('/') {
            Some(filename.to_owned())
        } else {
            read_exe(&self.config.proc_root, pid)
                .or_else(|| (!filename.is_empty()).then(|| filename.to_owned()))
        };
        let previous = self.slots.get(&pid).map(|s| &s.entry);
        // exec keeps the process (same start time, same cgroup path unless it moved); an exited
        // entry under this pid was another process whose pid got reused.
        let same_process = previous.filter(|p| p.exited_at.is_none());
        let start_time_ticks = same_process.and_then(|p| p.start_time_ticks);
        let (cgroup_id, cgroup_path, container) = match same_process {
            Some(p) if cgroup_id.is_none() || cgroup_id == p.cgroup_id => {
                (p.cgroup_id, p.cgroup_path.clone(), p.container_id.clone())
            }
            _ => (cgroup_id, None, None),
        };
        self.proc_misses.remove(&pid);
        self.insert(ProcessEntry {
            pid,
            ppid,
            comm: comm.to_owned(),
            exe,
            cgroup_id,
            cgroup_path,
            container_id: container,
            start_time_ticks,
            exited_at: None,
        });
    }

    /// A process (thread group) exited. Call it once per process, not per thread: the event of
    /// a non-leader thread (tid != pid) must not end the process's entry.
    ///
    /// Unknown pids are ignored: if a record had referred to the process, the lookup would have
    /// added it, so nobody needs it now.
    pub fn on_exit(&mut self, pid: u32) {
        let now = self.clock.now();
        let Some(slot) = self.slots.get_mut(&pid) else {
            return;
        };
        if slot.entry.exited_at.is_some() {
            return;
        }
        slot.entry.exited_at = Some(now);
        self.live.remove(&(slot.seq, pid));
        self.exited.insert((now, pid));
    }

    /// Remove exited processes whose grace period has ended at `now`; returns how many.
    /// Call it periodically (every few seconds); lookups also ignore expired entries.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some(&(at, pid)) = self.exited.first() {
            if now.saturating_duration_since(at) < self.config.exit_grace {
                break;
            }
            self.remove(pid);
            n += 1;
        }
        self.stats.expired += n as u64;
        self.proc_misses
            .retain(|_, at| now.saturating_duration_since(*at) < self.config.proc_miss_ttl);
        n
    }

    /// The entry for `pid` as stored (no /proc fallback, expired entries included).
    pub fn get(&self, pid: u32) -> Option<&ProcessEntry> {
        self.slots.get(&pid).map(|s| &s.entry)
    }

    /// What is known about `pid`. An unknown pid is looked for in /proc once (a process that
    /// predates the scan's view or whose exec event was lost) and cached when found; a pid not
    /// found there is not looked for again for `proc_miss_ttl`.
    pub fn lookup(&mut self, pid: u32) -> Option<ProcessInfo> {
        let now = self.clock.now();
        if let Some(slot) = self.slots.get(&pid) {
            match slot.entry.exited_at {
                Some(at) if now.saturating_duration_since(at) >= self.config.exit_grace => {
                    // Past its grace period but not yet expired: the pid may belong to a new
                    // process by now, so drop the old entry and fall through to /proc.
                    self.remove(pid);
                    self.stats.expired += 1;
                }
                _ => return Some(slot.entry.to_process_info()),
            }
        }
        if let Some(&at) = self.proc_misses.get(&pid) {
            if now.saturating_duration_since(at) < self.config.proc_miss_ttl {
                return None;
            }
        }
        self.stats.proc_reads += 1;
        let mut no_cache = HashMap::new();
        match read_process(
            &self.config.proc_root,
            pid,
            self.cgroup2_root.as_deref(),
            &mut no_cache,
        ) {
            Ok(entry) => {
                self.proc_misses.remove(&pid);
                let info = entry.to_process_info();
                self.insert(entry);
                Some(info)
            }
            Err(_) => {
                self.stats.proc_read_failures += 1;
                if self.proc_misses.len() >= MAX_PROC_MISSES {
                    self.proc_misses.clear();
                }
                self.proc_misses.insert(pid, now);
                None
            }
        }
    }

    /// Process info for a record from the kernel: `lookup`, with what the kernel reported at
    /// the time of the record taking precedence: its `comm` (the process may have renamed
    /// itself or exec'd since /proc was read) and its cgroup id (it may have been moved).
    /// Always returns something: an unknown pid still gets the kernel's comm and cgroup.
    pub fn resolve(
        &mut self,
        pid: u32,
        tid: Option<u32>,
        comm_from_kernel: Option<&str>,
        cgroup_from_kernel: Option<u64>,
    ) -> ProcessInfo {
        let mut info = self.lookup(pid).unwrap_or_else(|| ProcessInfo {
            pid,
            ..Default::default()
        });
        info.tid = tid;
        if let Some(comm) = comm_from_kernel.filter(|c| !c.is_empty()) {
            info.comm = comm.to_owned();
        }
        if let Some(id) = cgroup_from_kernel.filter(|&id| id != 0) {
            if info.cgroup_id.is_some_and(|known| known != id) {
                // The process moved: the container id was derived from the other cgroup.
                info.container_id = None;
            }
            // (Table id unknown: the cgroup2 mount is not visible to us, but a container id
            // parsed from /proc/<pid>/cgroup is still the best answer there is.)
            info.cgroup_id = Some(id);
        }
        info
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn stats(&self) -> ProcessTableStats {
        ProcessTableStats {
            entries: self.slots.len(),
            exited: self.exited.len(),
            ..self.stats
        }
    }

    /// Iterate over the entries (for seeding caches, debugging endpoints).
    pub fn entries(&self) -> impl Iterator<Item = &ProcessEntry> {
        self.slots.values().map(|s| &s.entry)
    }

    fn insert(&mut self, entry: ProcessEntry) {
        let pid = entry.pid;
        if self.remove(pid).is_none() && self.slots.len() >= self.config.max_entries {
            self.evict_one();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        match entry.exited_at {
            Some(at) => self.exited.insert((at, pid)),
            None => self.live.insert((seq, pid)),
        };
        self.slots.insert(pid, Slot { entry, seq });
    }

    fn remove(&mut self, pid: u32) -> Option<Slot> {
        let slot = self.slots.remove(&pid)?;
        match slot.entry.exited_at {
            Some(at) => self.exited.remove(&(at, pid)),
            None => self.live.remove(&(slot.seq, pid)),
        };
        Some(slot)
    }

    /// Make room for one entry: the longest-exited process first (it is the least likely to be
    /// referred to again), else the oldest live one.
    fn evict_one(&mut self) {
        let victim = match self.exited.first() {
            Some(&(_, pid)) => pid,
            None => match self.live.first() {
                Some(&(_, pid)) => {
                    self.stats.evicted_live += 1;
                    pid
                }
                None => return,
            },
        };
        self.remove(victim);
        self.stats.evictions += 1;
    }
}

/// The fields of `/proc/<pid>/stat` this crate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    pub comm: String,
    pub ppid: u32,
    pub start_time_ticks: u64,
}

/// Parse `/proc/<pid>/stat`. The comm is everything between the first '(' and the *last* ')',
/// because a process may name itself with spaces and parentheses (`(my (weird) proc)`), and
/// nothing after the comm can contain ')'.
pub fn parse_stat(text: &str) -> std::result::Result<ProcStat, &'static str> {
    let open = text.find('(').ok_or("no '('")?;
    let close = text.rfind(')').ok_or("no ')'")?;
    if close < open {
        return Err("')' before '('");
    }
    let pid = text[..open].trim().parse().map_err(|_| "bad pid")?;
    let comm = text[open + 1..close].to_owned();
    // Fields after the comm, starting at field 3 (state).
    let rest: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).copied().ok_or("too few fields");
    let ppid = field(4)?.parse().map_err(|_| "bad ppid")?;
    let start_time_ticks = field(22)?.parse().map_err(|_| "bad starttime")?;
    Ok(ProcStat {
        pid,
        comm,
        ppid,
        start_time_ticks,
    })
}

/// The cgroup v2 path from the text of `/proc/<pid>/cgroup` (its `0::<path>` line).
pub fn parse_cgroup_v2_path(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let path = line.strip_prefix("0::")?;
        // A cgroup removed under a lingering task is shown with this suffix.
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        path.starts_with('/').then(|| path.to_owned())
    })
}

/// The inode of `<cgroup2_root><path>`, i.e. the cgroup id.
pub fn cgroup_id_of_path(cgroup2_root: &Path, path: &str) -> Option<u64> {
    let rel = path.trim_start_matches('/');
    let dir = if rel.is_empty() {
        cgroup2_root.to_path_buf()
    } else {
        cgroup2_root.join(rel)
    };
    fs::metadata(dir).ok().map(|m| m.ino())
}

fn read_exe(proc_root: &Path, pid: u32) -> Option<String> {
    // Fails for kernel threads and zombies (no mm), and without ptrace access: all mean None.
    fs::read_link(proc_root.join(pid.to_string()).join("exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Read one process from `<proc_root>/<pid>`. Only a missing or malformed stat is an error;
/// exe and cgroup are best effort.
pub fn read_process(
    proc_root: &Path,
    pid: u32,
    cgroup2_root: Option<&Path>,
    cgroup_ids: &mut HashMap<String, Option<u64>>,
) -> Result<ProcessEntry> {
    let dir = proc_root.join(pid.to_string());
    let stat_path = dir.join("stat");
    let text = fs::read_to_string(&stat_path).map_err(|e| EnrichError::io(&stat_path, e))?;
    let stat = parse_stat(&text).map_err(|reason| EnrichError::parse(&stat_path, reason))?;
    let exe = read_exe(proc_root, pid);
    let cgroup_path = fs::read_to_string(dir.join("cgroup"))
        .ok()
        .and_then(|t| parse_cgroup_v2_path(&t));
    let cgroup_id = match (cgroup2_root, &cgroup_path) {
        (Some(root), Some(path)) => *cgroup_ids
            .entry(path.clone())
            .or_insert_with(|| cgroup_id_of_path(root, path)),
        _ => None,
    };
    let container = cgroup_path.as_deref().and_then(container_id);
    Ok(ProcessEntry {
        pid,
        ppid: stat.ppid,
        comm: stat.comm,
        exe,
        cgroup_id,
        cgroup_path,
        container_id: container,
        start_time_ticks: Some(stat.start_time_ticks),
        exited_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::fake::FakeHost;

    const CID: &str = "4a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";

    fn table(host: &FakeHost, clock: &Arc<ManualClock>, max: usize) -> ProcessTable {
        let cfg = ProcessTableConfig {
            proc_root: host.proc.clone(),
            max_entries: max,
            ..Default::default()
        };
        ProcessTable::with_clock(cfg, clock.clone())
    }

    #[test]
    fn parse_stat_comm_with_spaces_and_parens() {
        let s = parse_stat(
            "4242 (my (weird) proc) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0",
        )
        .expect("valid stat");
        assert_eq!(
            s,
            ProcStat {
                pid: 4242,
                comm: "my (weird) proc".into(),
                ppid: 1,
                start_time_ticks: 777
            }
        );
        // ") " inside the comm must not end it early.
        let s = parse_stat("7 (a) S 9 (b) R 3 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0")
            .expect("valid stat");
        assert_eq!(
            (s.comm.as_str(), s.ppid, s.start_time_ticks),
            ("a) S 9 (b", 3, 55)
        );
        let s =
            parse_stat("8 () S 2 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0").expect("empty comm");
        assert_eq!(s.comm, "");
        let s = parse_stat("9 (new\nline) S 2 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 6 0 0")
            .expect("newline comm");
        assert_eq!(s.comm, "new\nline");
    }

    #[test]
    fn parse_stat_rejects_malformed() {
        for bad in [
            "",
            "12 sleep S 1",
            "12 (sleep S 1",
            "12 )sleep( S 1",
            "x (sleep) S 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5",
            "12 (sleep) S 1 0 0",
            "12 (sleep) S one 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5",
            "12 (sleep) S 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -5",
        ] {
            assert!(parse_stat(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn parse_cgroup_file() {
        let hybrid =
            "12:pids:/user.slice\n1:name=systemd:/user.slice/x.scope\n0::/user.slice/x.scope\n";
        assert_eq!(
            parse_cgroup_v2_path(hybrid).as_deref(),
            Some("/user.slice/x.scope")
        );
        assert_eq!(parse_cgroup_v2_path("0::/\n").as_deref(), Some("/"));
        assert_eq!(
            parse_cgroup_v2_path("0::/gone (deleted)\n").as_deref(),
            Some("/gone")
        );
        assert_eq!(parse_cgroup_v2_path("4:memory:/x\n"), None, "v1-only host");
        assert_eq!(parse_cgroup_v2_path(""), None);
    }

    #[test]
    fn scan_fake_proc_tree() {
        let host = FakeHost::new();
        let root_id = host.add_cgroup("/");
        let scope = format!("/system.slice/docker-{CID}.scope");
        let scope_id = host.add_cgroup(&scope);
        host.add_process(
            100,
            "my (weird) proc",
            1,
            1234,
            Some("/usr/bin/weird"),
            Some(&scope),
        );
        // A kernel thread: no exe link target, root cgroup.
        host.add_process(2, "kthreadd", 0, 9, None, Some("/"));
        // No cgroup file (old kernel / unreadable): still a process.
        host.add_process(7, "nocg", 1, 10, Some("/bin/true"), None);
        // Exited mid-scan leaves garbage or nothing: counted, not fatal.
        fs::create_dir_all(host.proc.join("300")).expect("mkdir");
        fs::write(host.proc.join("300").join("stat"), "300 (trunc").expect("write");
        fs::create_dir_all(host.proc.join("301")).expect("mkdir");

        let clock = Arc::new(ManualClock::new());
        let mut t = table(&host, &clock, 100);
        assert_eq!(
            t.cgroup2_root(),
            Some(host.cg.as_path()),
            "found via <proc>/mounts"
        );
        let stats = t.scan_proc(&host.proc).expect("scan");
        assert_eq!(
            stats,
            ScanStats {
                found: 5,
                inserted: 3,
                merged: 0,
                failed: 2
            }
        );

        let e = t.get(100).expect("pid 100");
        assert_eq!(e.comm, "my (weird) proc");
        assert_eq!(e.ppid, 1);
        assert_eq!(e.exe.as_deref(), Some("/usr/bin/weird"));
        assert_eq!(e.cgroup_id, Some(scope_id));
        assert_eq!(e.cgroup_path.as_deref(), Some(scope.as_str()));
        assert_eq!(e.container_id.as_deref(), Some(CID));
        assert_eq!(e.start_time_ticks, Some(1234));
        assert_eq!(e.exited_at, None);

        let k = t.get(2).expect("kthreadd");
        assert_eq!(
            (k.exe.as_deref(), k.cgroup_id, k.container_id.as_deref()),
            (None, Some(root_id), None)
        );
        let n = t.get(7).expect("pid 7");
        assert_eq!((n.cgroup_id, n.cgroup_path.as_deref()), (None, None));

        let info = t.lookup(100).expect("lookup");
        assert_eq!(
            info,
            ProcessInfo {
                pid: 100,
                tid: None,
                ppid: Some(1),
                comm: "my (weird) proc".into(),
                exe: Some("/usr/bin/weird".into()),
                cgroup_id: Some(scope_id),
                container_id: Some(CID.into()),
            }
        );
        assert_eq!(t.stats().proc_reads, 0, "answered from the table");
    }

    #[test]
    fn missing_proc_root_is_an_error() {
        let host = FakeHost::new();
        let clock = Arc::new(ManualClock::new());
        let mut t = table(&host, &clock, 10);
        assert!(t.scan_proc(&host.proc.join("nope")).is_err());
    }

    #[test]
    fn unknown_pid_falls_back_to_proc_once() {
        let host = FakeHost::new();
        let clock = Arc::new(ManualClock::new());
        let mut t = table(&host, &clock, 10);
        host.add_process(100, "late", 1, 50, Some("/usr/bin/late"), Some("/"));

        assert_eq!(t.lookup(100).map(|i| i.comm), Some("late".into()));
        assert_eq!(t.lookup(100).map(|i| i.comm), Some("late".into()));
        assert_eq!(t.stats().proc_reads, 1, "found once, then cached");
        host.remove_process(100);
        assert_eq!(
            t.lookup(100).map(|i| i.comm),
            Some("late".into()),
            "served from the table"
        );

        assert_eq!(t.lookup(999), None);
        assert_eq!(t.lookup(999), None);
        let s = t.stats();
        assert_eq!(
            (s.proc_reads, s.proc_read_failures),
            (2, 1),
            "a miss is not retried at once"
        );
        clock.advance(DEFAULT_PROC_MISS_TTL);
        host.add_process(999, "appeared", 1, 60, None, None);
        assert_eq!(t.lookup(999).map(|i| i.comm), Some("appeared".into()));
        assert_eq!(t.stats().proc_reads, 3);
    }

    #[test]
    fn exec_event_and_kernel_precedence() {
        let host = FakeHost::new();
        let clock = Arc::new(ManualClock::new());
        let mut t = table(&host, &clock, 10);
        t.on_exec(500, 100, "curl", "/usr/bin/curl", Some(4242));
        let info = t.lookup(500).expect("known from exec");
        assert_eq!(
            (
                info.comm.as_str(),
                info.ppid,
                info.exe.as_deref(),
                info.cgroup_id
            ),
            ("curl", Some(100), Some("/usr/bin/curl"), Some(4242))
        );
        assert_eq!(t.stats().proc_reads, 0);

        // The record's comm and cgroup win over the table's.
        let r = t.resolve(500, Some(501), Some("curl-worker"), Some(4243));
        assert_eq!(
            (r.tid, r.comm.as_str(), r.cgroup_id),
            (Some(501), "curl-worker", Some(4243))
        );
        // Empty comm / zero cgroup from the kernel mean "not known".
        let r = t.resolve(500, None, Some(""), Some(0));
        assert_eq!((r.comm.as_str(), r.cgroup_id), ("curl", Some(4242)));

        // Unknown everywhere: still an answer with what the kernel said.
        let r = t.resolve(777, Some(778), Some("ghost"), Some(9));
        assert_eq!(
            r,
            ProcessInfo {
                pid: 777,
                tid: Some(778),
                comm: "ghost".into(),
                cgroup_id: Some(9),
                ..Default::default()
            }
        );
    }

    #[test]
    fn exec_keeps_scanned_identity_and_scan_keeps_events() {
        let host = FakeHost::new();
        let scope = format!("/machine.slice/libpod-{CID}.scope");
        let id = host.add_cgroup(&scope);
        host.add_process(100, "bash", 1, 1234, Some("/usr/bin/bash"), Some(&scope));
        let clock = Arc::new(ManualClock::new());
        let mut t = table(&host, &clock, 10);
        t.scan_proc(&host.proc).expect("scan");

        // Same process exec's: start time and cgroup path carry over.
        t.on_exec(100, 1, "python3", "/usr/bin/python3", Some(id));
        let e = t.get(100).expect("entry");
        assert_eq!(
            (e.comm.as_str(), e.start_time_ticks),
            ("python3", Some(1234))
        );
        assert_eq!(e.container_id.as_deref(), Some(CID));

        // A later scan completes but does not overwrite the event's data.
        let s = t.scan_proc(&host.proc).expect("scan");
        assert_eq!((s.inserted, s.merged), (0, 1));
        assert_eq!(t.get(100).map(|e| e.comm.as_str()), Some("python3"));

        // A relative filename is replaced by the exe link when readable.
        host.add_process(200, "run", 100, 99, Some("/opt/app/run.sh"), None);
        t.on_exec(200, 100, "run", "./run.sh", None);
        assert_eq!(
            t.get(200).and_then(|e| e.exe.clone()).as_deref(),
            Some("/opt/app/run.sh")
        );
        t.on_exec(201, 100, "gone", "./gone", None);
        assert_eq!(
            t.get(201).and_then(|e| e.exe.clone()).as_deref(),
            Some("./gone")
        );

        // An exited entry is not revived by a scan that still sees the zombie.
        t.on_exit(100);
        t.scan_proc(&host.proc).expect("scan");
        assert!(t.get(100).and_then(|e| e.exited_at).is_some());
        // Its pid being reused by an exec'ing process replaces it, without the old identity.
        t.on_exec(100, 7, "nginx", "/usr/sbin/nginx", None);
        let e = t.get(100).expect("entry");
        assert_eq!(
            (e.exited_at, e.start_time_ticks, e.container_id.as_deref()),
            (None, None, None)
        );
    }

    #[test]
    fn exited_process_resolvable_during_grace_only() {
        let host = FakeHost::new();
        let clock = Arc::new(ManualClock::new());
        let mut t = table(&host, &clock, 10);
        t.on_exec(10, 1, "short", "/bin/short", None);
        t.on_exit(10);
        let exited_at = t.get(10).and_then(|e| e.exited_at).expect("exited");
        clock.advance(Duration::from_secs(29));
        t.on_exit(10); // a second exit event does not restart the grace period
        assert_eq!(t.get(10).and_then(|e| e.exited_at), Some(exited_at));
        assert_eq!(t.lookup(10).map(|i| i.comm), Some("short".into()));
        assert_eq!(t.expire(clock.now()), 0);
        assert_eq!(t.stats().exited, 1);

        clock.advance(Duration::from_secs(1));
        // Past the grace period: not served any more even before expire() runs, and not in
        // the (fake) /proc either.
        assert_eq!(t.lookup(10), None);
        assert_eq!(t.stats().expired, 1);
        assert!(t.is_empty());

        // expire() removes exactly those past their grace period.
        t.on_exec(20, 1, "a", "/bin/a", None);
        t.on_exec(21, 1, "b", "/bin/b", None);
        t.on_exec(22, 1, "c", "/bin/c", None);
        t.on_exit(20);
        clock.advance(Duration::from_secs(10));
        t.on_exit(21);
        clock.advance(DEFAULT_EXIT_GRACE - Duration::from_secs(10));
        assert_eq!(t.expire(clock.now()), 1);
        assert!(t.get(20).is_none() && t.get(21).is_some() && t.get(22).is_some());
        assert_eq!(t.expire(clock.now() + Duration::from_secs(3600)), 1);
        assert_eq!(t.len(), 1, "live processes never expire");
        assert_eq!(t.stats().expired, 3);
        t.on_exit(12345); // unknown: ignored
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn configurable_grace() {
        let host = FakeHost::new();
        let clock = Arc::new(ManualClock::new());
        let cfg = ProcessTableConfig {
            proc_root: host.proc.clone(),
            exit_grace: Duration::from_secs(2),
            ..Default::default()
        };
        let mut t = ProcessTable::with_clock(cfg, clock.clone());
        t.on_exec(10, 1, "x", "/bin/x", None);
        t.on_exit(10);
        clock.advance(Duration::from_secs(2));
        assert_eq!(t.expire(clock.now()), 1);
    }

    #[test]
    fn eviction_prefers_oldest_exited_then_oldest_live() {
        let host = FakeHost::new();
        let clock = Arc::new(ManualClock::new());
        let mut t = table(&host, &clock, 3);
        t.on_exec(1, 0, "p1", "/bin/p1", None);
        t.on_exec(2, 0, "p2", "/bin/p2", None);
        t.on_exec(3, 0, "p3", "/bin/p3", None);
        t.on_exit(2);
        clock.advance(Duration::from_secs(1));
        t.on_exit(1);

        t.on_exec(4, 0, "p4", "/bin/p4", None);
        assert!(t.get(2).is_none(), "oldest exited goes first");
        t.on_exec(5, 0, "p5", "/bin/p5", None);
        assert!(t.get(1).is_none(), "then the next exited");
        let s = t.stats();
        assert_eq!((s.evictions, s.evicted_live), (2, 0));

        t.on_exec(6, 0, "p6", "/bin/p6", None);
        assert!(t.get(3).is_none(), "nothing exited: oldest live");
        // Replacing an existing pid needs no room.
        t.on_exec(6, 0, "p6b", "/bin/p6", None);
        let s = t.stats();
        assert_eq!((s.entries, s.evictions, s.evicted_live), (3, 3, 1));
        let mut pids: Vec<u32> = t.entries().map(|e| e.pid).collect();
        pids.sort_unstable();
        assert_eq!(pids, [4, 5, 6]);

        // Fallback inserts from /proc respect the bound too.
        host.add_process(50, "fromproc", 1, 5, None, None);
        assert!(t.lookup(50).is_some());
        assert_eq!(t.len(), 3);
        assert_eq!(t.stats().evictions, 4);
    }

    #[test]
    fn zero_bound_is_treated_as_one() {
        let host = FakeHost::new();
        let clock = Arc::new(ManualClock::new());
        let mut t = table(&host, &clock, 0);
        t.on_exec(1, 0, "a", "/a", None);
        t.on_exec(2, 0, "b", "/b", None);
        assert_eq!(t.len(), 1);
        assert!(t.get(2).is_some());
    }
}
