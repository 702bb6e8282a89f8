//! Tests against the running kernel: the real /proc and the real cgroup2 mount. They need root
//! for the cgroup part; without a cgroup2 mount (or without permission to create cgroups) those
//! parts say so on stderr and pass, so that the suite still runs in unprivileged CI.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread::sleep;
use std::time::{Duration, Instant};

use fathom_enrich::cgroup::find_cgroup2_mount;
use fathom_enrich::process::parse_cgroup_v2_path;
use fathom_enrich::{
    CgroupResolver, CgroupResolverConfig, Enricher, EnricherConfig, ProcessTable,
    ProcessTableConfig,
};

const CID: &str = "feedfacecafebeef0123456789abcdef0123456789abcdeffeedfacecafebeef";

/// Kills and reaps the children, then removes the cgroup directories (innermost first), also
/// when the test fails half-way.
#[derive(Default)]
struct Cleanup {
    children: Vec<Child>,
    dirs: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for d in self.dirs.iter().rev() {
            // rmdir of a cgroup fails with EBUSY while a (just reaped) task is still being
            // released; retry briefly.
            for _ in 0..50 {
                match fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(_) => sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

fn spawn_sleep(cleanup: &mut Cleanup) -> u32 {
    let child = Command::new("sleep").arg("5").spawn().expect("spawn sleep");
    let pid = child.id();
    cleanup.children.push(child);
    // Between fork and exec the child is still a copy of us; wait for the exec.
    let exe = PathBuf::from(format!("/proc/{pid}/exe"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if fs::read_link(&exe).is_ok_and(|p| p.ends_with("sleep")) {
            return pid;
        }
        sleep(Duration::from_millis(5));
    }
    panic!("child {pid} did not exec sleep");
}

fn cgroup2() -> Option<PathBuf> {
    let m = find_cgroup2_mount(Path::new("/proc")).expect("read /proc/mounts");
    if m.is_none() {
        eprintln!("SKIP: no cgroup2 mount on this host");
    }
    m
}

/// The cgroup id as the kernel hands it out (`name_to_handle_at` on cgroupfs returns the
/// 8-byte kernfs node id, the same value `bpf_get_current_cgroup_id()` returns): an independent
/// check that "directory inode" is the right definition.
fn kernel_cgroup_id(dir: &Path) -> Option<u64> {
    #[repr(C)]
    struct Handle {
        handle_bytes: libc::c_uint,
        handle_type: libc::c_int,
        f_handle: [u8; 8],
    }
    let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut h = Handle {
        handle_bytes: 8,
        handle_type: 0,
        f_handle: [0; 8],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `h` is a file_handle header followed by 8 bytes of room, as handle_bytes says;
    // both pointers are valid for the duration of the call.
    let rc = unsafe {
        libc::name_to_handle_at(
            libc::AT_FDCWD,
            path.as_ptr(),
            (&mut h as *mut Handle).cast::<libc::file_handle>(),
            &mut mount_id,
            0,
        )
    };
    (rc == 0 && h.handle_bytes == 8).then(|| u64::from_ne_bytes(h.f_handle))
}

fn expected_comm() -> String {
    // The main thread's comm is the executable's file name truncated to 15 bytes.
    let exe = std::env::current_exe().expect("current_exe");
    let name = exe
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned();
    name.chars().take(15).collect()
}

#[test]
fn scan_real_proc_finds_self() {
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    let stats = t.scan_proc(Path::new("/proc")).expect("scan /proc");
    assert!(stats.inserted > 2, "{stats:?}");
    let me = std::process::id();
    let e = t.get(me).expect("own process in the table");
    assert_eq!(e.comm, expected_comm());
    assert_eq!(e.ppid, std::os::unix::process::parent_id());
    let exe = std::env::current_exe().expect("current_exe");
    assert_eq!(e.exe.as_deref(), Some(exe.to_string_lossy().as_ref()));
    assert!(e.start_time_ticks.is_some());
    // pid 2 is kthreadd on every Linux without a pid namespace: a kernel thread, no exe.
    if let Some(k) = t.get(2) {
        if k.comm == "kthreadd" {
            assert_eq!(k.exe, None);
        }
    }
}

#[test]
fn lookup_spawned_sleep() {
    let mut cleanup = Cleanup::default();
    let pid = spawn_sleep(&mut cleanup);
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    // Not scanned: the lookup has to find it in /proc by itself.
    let info = t.lookup(pid).expect("sleep found via /proc");
    assert_eq!(info.comm, "sleep");
    assert_eq!(info.ppid, Some(std::process::id()));
    let sleep_bin = fs::canonicalize("/usr/bin/sleep").expect("/usr/bin/sleep");
    assert_eq!(
        info.exe.as_deref(),
        Some(sleep_bin.to_string_lossy().as_ref())
    );
    assert_eq!(sleep_bin, Path::new("/usr/bin/sleep"));
    assert_eq!(t.stats().proc_reads, 1);
}

#[test]
fn own_cgroup_id_is_cgroup2_dir_inode() {
    let Some(root) = cgroup2() else { return };
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    let me = std::process::id();
    let info = t.lookup(me).expect("self");
    let text = fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
    let path = parse_cgroup_v2_path(&text).expect("0:: line");
    let dir = root.join(path.trim_start_matches('/'));
    let ino = fs::metadata(&dir).expect("stat own cgroup").ino();
    assert_eq!(info.cgroup_id, Some(ino));
    match kernel_cgroup_id(&dir) {
        Some(kid) => assert_eq!(kid, ino, "kernel's cgroup id for {}", dir.display()),
        None => eprintln!("note: name_to_handle_at unsupported here; inode check only"),
    }
    let mut r = CgroupResolver::new(&root, CgroupResolverConfig::default());
    assert_eq!(r.path(ino).as_deref(), Some(path.as_str()));
}

#[test]
fn fresh_cgroup_resolves_to_its_path() {
    let Some(root) = cgroup2() else { return };
    let mut cleanup = Cleanup::default();
    let name = format!("fathom-enrich-test-{}", std::process::id());
    let parent = root.join(&name);
    match fs::create_dir(&parent) {
        Ok(()) => cleanup.dirs.push(parent.clone()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EACCES | libc::EPERM | libc::EROFS)
            ) =>
        {
            eprintln!("SKIP: cannot create cgroups here: {e}");
            return;
        }
        Err(e) => panic!("mkdir {}: {e}", parent.display()),
    }
    let scope = parent.join(format!("docker-{CID}.scope"));
    fs::create_dir(&scope).expect("mkdir scope");
    cleanup.dirs.push(scope.clone());

    // Built before the child moves, so the enricher must find the new cgroup by itself.
    let enricher = Enricher::new(EnricherConfig::default()).expect("enricher over /proc");
    let pid = spawn_sleep(&mut cleanup);
    fs::write(scope.join("cgroup.procs"), pid.to_string()).expect("move child into cgroup");

    let id = fs::metadata(&scope).expect("stat scope").ino();
    if let Some(kid) = kernel_cgroup_id(&scope) {
        assert_eq!(kid, id);
    }
    let rel = format!("/{name}/docker-{CID}.scope");
    let mut r = CgroupResolver::new(&root, CgroupResolverConfig::default());
    assert_eq!(r.path(id).as_deref(), Some(rel.as_str()));
    let parent_id = fs::metadata(&parent).expect("stat parent").ino();
    // The resolver's "gone for good" shortcut relies on ids growing with creation order.
    assert!(id > parent_id, "cgroup ids increase: {parent_id} then {id}");
    assert_eq!(r.path(parent_id), Some(format!("/{name}")));
    assert_eq!(r.container_id_of(id).as_deref(), Some(CID));

    // Through the facade: from the kernel's point of view (id only) …
    assert_eq!(enricher.cgroup_path(id).as_deref(), Some(rel.as_str()));
    let info = enricher.process_info(pid, Some(pid), Some("sleep"), Some(id));
    assert_eq!(info.container_id.as_deref(), Some(CID));
    assert_eq!(info.cgroup_id, Some(id));
    // … and from /proc alone.
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    let info = t.lookup(pid).expect("child");
    assert_eq!(
        (info.cgroup_id, info.container_id.as_deref()),
        (Some(id), Some(CID))
    );
    assert_eq!(t.get(pid).and_then(|e| e.cgroup_path.clone()), Some(rel));
}
