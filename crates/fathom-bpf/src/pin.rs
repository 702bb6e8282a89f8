//! bpffs for pinned state: make sure a pin directory is on a BPF filesystem (mounting one on
//! /sys/fs/bpf when nothing is there yet, as `make deps` does), and remove pin files.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `statfs(2)` f_type of a BPF filesystem.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// Where bpffs lives on every distribution.
pub const BPFFS: &str = "/sys/fs/bpf";

fn fs_type(path: &Path) -> std::io::Result<i64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: a NUL-terminated path and a buffer of the right type, filled by the kernel.
    let rc = unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statfs returned 0, so the struct is initialised.
    let st = unsafe { st.assume_init() };
    // f_type is i64 on x86_64 glibc, u32 or i32 elsewhere.
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_type as i64)
}

/// Make `dir` (created if missing) a directory on bpffs. When its nearest existing ancestor
/// is /sys/fs/bpf without a BPF filesystem on it, mount one there first. Errors say why pins
/// cannot live at `dir`; the caller decides whether to run unpinned.
pub fn ensure_bpffs_dir(dir: &Path) -> Result<(), String> {
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    let on_bpffs = |p: &Path| fs_type(p).map(|t| t == BPF_FS_MAGIC).unwrap_or(false);
    if !on_bpffs(&existing) {
        if existing != Path::new(BPFFS) {
            return Err(format!(
                "{} is not on a BPF filesystem (pins must live under a bpffs mount such as {BPFFS})",
                existing.display()
            ));
        }
        mount_bpffs()?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating pin dir {}: {e}", dir.display()))
}

fn mount_bpffs() -> Result<(), String> {
    let (src, target, fstype) = (c"bpf", c"/sys/fs/bpf", c"bpf");
    // SAFETY: constant NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mounting bpffs on {BPFFS}: {}",
            std::io::Error::last_os_error()
        ));
    }
    tracing::info!("mounted bpffs on {BPFFS}");
    Ok(())
}

/// Remove `dir/name` for each name; returns the paths removed (missing ones are skipped).
pub fn remove_files(dir: &Path, names: &[&str]) -> Result<Vec<PathBuf>, String> {
    let mut removed = Vec::new();
    for name in names {
        let p = dir.join(name);
        match std::fs::remove_file(&p) {
            Ok(()) => removed.push(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("removing {}: {e}", p.display())),
        }
    }
    Ok(removed)
}
