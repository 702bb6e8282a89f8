//! Pod cgroups (v2). They exist so that every process of a pod can be found and killed, and so that the agent can
//! map `bpf_get_current_cgroup_id()` back to a pod: on cgroup2 that id is the directory's inode number.

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::{LabError, Result};

/// How long `down` waits for killed processes to leave their cgroup before reporting an error.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Create a cgroup directory (its parent must exist) and return its cgroup id.
pub fn create(path: &Path) -> Result<u64> {
    std::fs::create_dir(path)
        .map_err(|e| LabError::io(format!("creating cgroup {}", path.display()), e))?;
    cgroup_id(path)
}

/// The cgroup id of a cgroup2 directory: its inode number.
pub fn cgroup_id(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|e| LabError::io(format!("stat {}", path.display()), e))
}

/// Pids listed in `cgroup.procs` (empty if the cgroup does not exist).
pub fn procs(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Kill every process in the cgroup and wait (bounded) until it is empty. Uses `cgroup.kill` (5.14+), which also
/// catches processes forking while we kill; otherwise SIGKILLs each listed pid, repeatedly, until none are left.
pub fn kill_all(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let kill_file = path.join("cgroup.kill");
    let has_kill_file = kill_file.exists();
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        let pids = procs(path);
        if pids.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LabError::Other {
                context: format!("killing processes in {}", path.display()),
                message: format!("still running after {KILL_WAIT:?}: {pids:?}"),
            });
        }
        if has_kill_file {
            std::fs::write(&kill_file, "1")
                .map_err(|e| LabError::io(format!("writing {}", kill_file.display()), e))?;
        } else {
            for pid in pids {
                // ESRCH: it exited by itself meanwhile; anything else will show up as "still running" above.
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Remove a cgroup directory; a missing one is success. The kernel refuses (EBUSY) while dying tasks are still
/// being accounted, so retry briefly.
pub fn remove(path: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                return Err(LabError::io(
                    format!("removing cgroup {}", path.display()),
                    e,
                ))
            }
        }
    }
}

/// Remove a shared parent directory if nothing else uses it; "not empty" (another lab) and "gone" are success.
pub fn remove_if_empty(path: &Path) -> Result<()> {
    match std::fs::remove_dir(path) {
        Ok(()) => Ok(()),
        Err(e)
            if e.kind() == ErrorKind::NotFound
                || matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EBUSY)) =>
        {
            Ok(())
        }
        Err(e) => Err(LabError::io(
            format!("removing cgroup {}", path.display()),
            e,
        )),
    }
}

/// Sub-directories (child cgroups) of `path`, sorted.
pub fn children(path: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(path) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}
