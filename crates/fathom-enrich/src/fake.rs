//! A fake host for unit tests: a /proc tree and a cgroup2 tree made of real directories in a
//! tempdir (directory inodes there play the role of cgroup ids, as they do on cgroupfs).

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::PathBuf;

pub(crate) struct FakeHost {
    _dir: tempfile::TempDir,
    pub proc: PathBuf,
    pub cg: PathBuf,
}

impl FakeHost {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let proc = dir.path().join("proc");
        let cg = dir.path().join("cgroup2");
        fs::create_dir_all(&proc).expect("mkdir proc");
        fs::create_dir_all(&cg).expect("mkdir cgroup2");
        // A hybrid host's mounts: v1 hierarchies first, then the cgroup2 one.
        let mounts = format!(
            "proc /proc proc rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\ncgroup2 {} cgroup2 rw 0 0\n",
            cg.display()
        );
        fs::write(proc.join("mounts"), mounts).expect("write mounts");
        // Non-pid entries a real /proc has.
        fs::create_dir_all(proc.join("sys")).expect("mkdir sys");
        symlink("100", proc.join("self")).expect("symlink self");
        FakeHost {
            _dir: dir,
            proc,
            cg,
        }
    }

    /// mkdir -p a cgroup; returns its id (inode).
    pub fn add_cgroup(&self, path: &str) -> u64 {
        let dir = self.cg.join(path.trim_start_matches('/'));
        fs::create_dir_all(&dir).expect("mkdir cgroup");
        fs::metadata(&dir).expect("stat cgroup").ino()
    }

    pub fn add_process(
        &self,
        pid: u32,
        comm: &str,
        ppid: u32,
        start: u64,
        exe: Option<&str>,
        cgroup: Option<&str>,
    ) {
        let dir = self.proc.join(pid.to_string());
        fs::create_dir_all(&dir).expect("mkdir pid");
        let stat = format!(
            "{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {start} 1000 200 18446744073709551615 1 1 0 0 0\n"
        );
        fs::write(dir.join("stat"), stat).expect("write stat");
        if let Some(exe) = exe {
            symlink(exe, dir.join("exe")).expect("symlink exe");
        }
        if let Some(cg) = cgroup {
            fs::write(
                dir.join("cgroup"),
                format!("9:name=systemd:/\n4:memory:/x\n0::{cg}\n"),
            )
            .expect("write cgroup");
        }
    }

    pub fn remove_process(&self, pid: u32) {
        fs::remove_dir_all(self.proc.join(pid.to_string())).expect("rm pid");
    }
}
