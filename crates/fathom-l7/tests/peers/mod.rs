//! Support for `peers_tshark.rs`: finding the real servers and clients, running them under
//! guards that always stop them, capturing loopback traffic with tcpdump, and reading
//! tshark's dissection of the capture.
//!
//! Everything here is test code: it panics with a message instead of returning errors.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fathom_l7::replay::{replay_file, ReplayOptions};
use fathom_model::l7::L7Record;

/// `FATHOM_REQUIRE_PEERS=1` (set by `make test`) turns "peer missing, skipped" into a failure,
/// so CI cannot silently pass without running the comparison.
pub fn peers_required() -> bool {
    std::env::var("FATHOM_REQUIRE_PEERS").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Where to look beyond `PATH`: sbin directories are often missing from a test runner's PATH,
/// and Debian keeps the PostgreSQL server binaries in a versioned directory.
fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for d in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        dirs.push(PathBuf::from(d));
    }
    // Highest PostgreSQL version first.
    let mut pg: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    pg.sort_by_key(|p| {
        std::cmp::Reverse(
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    dirs.extend(pg);
    dirs
}

pub fn which(name: &str) -> Option<PathBuf> {
    search_dirs()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Resolved programs for one test, by name.
pub struct Tools(BTreeMap<String, PathBuf>);

impl Tools {
    pub fn get(&self, name: &str) -> &Path {
        &self.0[name]
    }

    pub fn cmd(&self, name: &str) -> Command {
        Command::new(self.get(name))
    }
}

/// The programs `test` needs (each entry: alternatives, first found wins, stored under the
/// first name), plus root, tcpdump and tshark. `None` (after saying why) when something is
/// missing and peers are not required; a panic when they are.
pub fn need(test: &str, programs: &[&[&str]]) -> Option<Tools> {
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    let base: [&[&str]; 2] = [&["tcpdump"], &["tshark"]];
    for alts in base.iter().chain(programs) {
        match alts.iter().find_map(|n| which(n)) {
            Some(p) => {
                found.insert(alts[0].to_string(), p);
            }
            None => missing.push(alts.join("|")),
        }
    }
    if !is_root() {
        missing.push("root (tcpdump on lo, servers as their users)".into());
    }
    if missing.is_empty() {
        return Some(Tools(found));
    }
    let msg = format!("{test}: missing {}", missing.join(", "));
    if peers_required() {
        panic!("{msg} (FATHOM_REQUIRE_PEERS is set)");
    }
    eprintln!("skipping {msg}; set FATHOM_REQUIRE_PEERS=1 to make this a failure");
    None
}

/// Same policy as [`need`] for a requirement that is not a program (a Python module, a user).
pub fn need_that(test: &str, ok: bool, what: &str) -> Option<()> {
    if ok {
        return Some(());
    }
    if peers_required() {
        panic!("{test}: missing {what} (FATHOM_REQUIRE_PEERS is set)");
    }
    eprintln!("skipping {test}: missing {what}; set FATHOM_REQUIRE_PEERS=1 to make this a failure");
    None
}

/// uid and gid of a system user, from /etc/passwd.
pub fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// A fresh directory under the system temp dir, world-readable so servers that run as their
/// own user can reach their data directory below it. Removed on drop unless
/// `FATHOM_PEERS_KEEP` is set (to look at the captures after a failure).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("fathom-peers-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("create temp dir");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("FATHOM_PEERS_KEEP").is_some() {
            eprintln!("kept {}", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// Recursively hand `path` to `uid:gid` (servers that refuse to run as root own their dirs).
pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    if path.is_dir() {
        for e in fs::read_dir(path).expect("read_dir").flatten() {
            chown_tree(&e.path(), uid, gid);
        }
    }
}

// The signal is sent to a whole process group (servers fork workers); std only offers
// SIGKILL to the direct child, so declare libc's kill(2), which every Rust binary links.
extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}
const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

fn signal_group(pgid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pgid) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
        unsafe {
            kill(-pid, sig);
        }
    }
}

/// Waits for `child` for up to `timeout`; `None` if it is still running.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

/// A process started in its own process group, stopped (SIGTERM to the group, then SIGKILL
/// after a grace period) when dropped, including when the test panics.
pub struct Guarded {
    pub name: String,
    child: Child,
    log: PathBuf,
    grace: Duration,
    /// Client ports of readiness probes (see [`Guarded::wait_tcp`]).
    probes: Vec<u16>,
}

impl Guarded {
    /// Starts `cmd` with stdout and stderr to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Guarded {
        let out = File::create(log).expect("create log");
        let err = out.try_clone().expect("dup log");
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({cmd:?}): {e}"));
        Guarded {
            name: name.into(),
            child,
            log: log.to_path_buf(),
            grace: Duration::from_secs(5),
            probes: Vec::new(),
        }
    }

    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Panics (with the log) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early ({status}); log tail:\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    /// Waits until something accepts TCP connections on 127.0.0.1:`port`. The probe
    /// connection's client port is remembered: a server that speaks first (MySQL's greeting)
    /// may answer the probe only after the capture has started, so captures leave it out
    /// (see [`Guarded::not_probes`]).
    pub fn wait_tcp(&mut self, port: u16, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        loop {
            self.assert_running();
            if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                if let Ok(a) = s.local_addr() {
                    self.probes.push(a.port());
                }
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} not listening on {port} after {timeout:?}; log tail:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A tcpdump filter suffix excluding the readiness probes' connections.
    pub fn not_probes(&self) -> String {
        self.probes
            .iter()
            .map(|p| format!(" and not port {p}"))
            .collect()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            self.assert_running();
            if fs::read_to_string(&self.log).is_ok_and(|t| t.contains(needle)) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: {needle:?} not logged after {timeout:?}; log tail:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pgid = self.child.id();
        signal_group(pgid, SIGTERM);
        if wait_timeout(&mut self.child, self.grace).is_none() {
            signal_group(pgid, SIGKILL);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Workers that outlive the leader (same group) are not left behind either.
        signal_group(pgid, SIGKILL);
    }
}

/// A TCP port that was free on 127.0.0.1 for both TCP and UDP a moment ago. Ports are picked
/// by the kernel so that several runs of these tests (or other services) do not collide.
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = l.local_addr().expect("addr").port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// Result of a client run.
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a client to completion (killed after `timeout`), stdout/stderr captured via files
/// so that a chatty client can never block on a full pipe.
pub fn run(dir: &Path, cmd: &mut Command, timeout: Duration) -> Ran {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out_p = dir.join(format!("client-{n}.out"));
    let err_p = dir.join(format!("client-{n}.err"));
    cmd.stdout(File::create(&out_p).expect("out"))
        .stderr(File::create(&err_p).expect("err"))
        .process_group(0);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let status = match wait_timeout(&mut child, timeout) {
        Some(s) => s,
        None => {
            signal_group(child.id(), SIGKILL);
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
    };
    Ran {
        status,
        stdout: fs::read_to_string(&out_p).unwrap_or_default(),
        stderr: fs::read_to_string(&err_p).unwrap_or_default(),
    }
}

/// Runs a client that must succeed.
pub fn run_ok(dir: &Path, cmd: &mut Command) -> Ran {
    let desc = format!("{cmd:?}");
    let r = run(dir, cmd, Duration::from_secs(20));
    assert!(
        r.status.success(),
        "{desc} failed ({}):\n{}{}",
        r.status,
        r.stdout,
        r.stderr
    );
    r
}

/// tcpdump on `lo` writing `path`, stopped (flushed) by [`Capture::stop`] or on drop.
pub struct Capture {
    child: Option<Child>,
    /// tcpdump's stderr lines after "listening on" (its closing statistics).
    lines: Option<mpsc::Receiver<String>>,
    pub path: PathBuf,
}

impl Capture {
    /// Starts tcpdump and returns once it reports that it is listening. `--immediate-mode`
    /// matters: without it packets wait in the kernel's capture buffer and are lost when
    /// tcpdump is stopped. `-Z root` keeps tcpdump from switching to the `tcpdump` user, which
    /// could not write into a root-owned temp dir. `-B` (KiB) gives a 64 MB kernel buffer:
    /// loopback segments are up to 64 KB, and on a busy machine a fast transfer must not
    /// overrun the default 2 MB.
    pub fn start(tools: &Tools, path: &Path, filter: &str) -> Capture {
        let mut cmd = tools.cmd("tcpdump");
        cmd.args(["-i", "lo", "-n", "-Z", "root", "--immediate-mode", "-U"])
            .args(["-s", "0", "-B", "65536", "-w"])
            .arg(path)
            .args(filter.split_whitespace())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().expect("start tcpdump");
        let stderr = child.stderr.take().expect("tcpdump stderr");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut cap = Capture {
            child: Some(child),
            lines: None,
            path: path.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l.contains("listening on") => break,
                Ok(l) => seen.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("tcpdump exited: {}", seen.join("\n"))
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() > deadline => {
                    panic!("tcpdump not listening after 15 s: {}", seen.join("\n"))
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        cap.lines = Some(rx);
        // The file header is written when the capture starts; check it is really there.
        let mut magic = [0u8; 4];
        let ok = File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok();
        assert!(ok, "tcpdump did not write {}", path.display());
        cap
    }

    /// Stops tcpdump after a short pause (so the last FIN/ACKs of clients that just exited are
    /// on the wire), waits for it to flush, and fails if the kernel dropped packets: a capture
    /// with holes would still compare equal on both sides, but would test less.
    pub fn stop(mut self) -> PathBuf {
        std::thread::sleep(Duration::from_millis(300));
        self.terminate();
        let stats: Vec<String> = self
            .lines
            .take()
            .map(|rx| rx.iter().collect())
            .unwrap_or_default();
        if let Some(dropped) = stats.iter().find(|l| l.contains("dropped by kernel")) {
            assert!(
                dropped.trim_start().starts_with("0 "),
                "tcpdump: {dropped} ({})",
                self.path.display()
            );
        }
        self.path.clone()
    }

    fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal_group(c.id(), SIGTERM);
            if wait_timeout(&mut c, Duration::from_secs(5)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// One tshark output row: per requested field, all its occurrences in the frame.
pub type Row = Vec<Vec<String>>;

/// Separates occurrences of a field; chosen so it cannot appear in the values compared.
const AGG: &str = "\u{1e}";

/// `tshark -r pcap -T fields` with every occurrence of each field, after `decode_as`
/// (`tcp.port==N,proto` …) and the display filter.
pub fn tshark(
    tools: &Tools,
    pcap: &Path,
    decode_as: &[String],
    filter: &str,
    fields: &[&str],
) -> Vec<Row> {
    let mut cmd = tools.cmd("tshark");
    cmd.arg("-n").arg("-r").arg(pcap);
    for d in decode_as {
        cmd.arg("-d").arg(d);
    }
    if !filter.is_empty() {
        cmd.arg("-Y").arg(filter);
    }
    cmd.args([
        "-T",
        "fields",
        "-E",
        "header=n",
        "-E",
        "occurrence=a",
        "-E",
        "separator=/t",
    ])
    .arg("-E")
    .arg(format!("aggregator={AGG}"));
    for f in fields {
        cmd.arg("-e").arg(f);
    }
    let dir = pcap.parent().expect("pcap dir");
    let r = run(dir, &mut cmd, Duration::from_secs(60));
    assert!(r.status.success(), "tshark failed: {}", r.stderr);
    r.stdout
        .lines()
        .map(|l| {
            l.split('\t')
                .map(|f| {
                    if f.is_empty() {
                        Vec::new()
                    } else {
                        f.split(AGG).map(str::to_string).collect()
                    }
                })
                .collect::<Row>()
        })
        .map(|mut row: Row| {
            row.resize(fields.len(), Vec::new());
            row
        })
        .collect()
}

/// Fathom's L7 records for the capture, with the options `fathom replay` uses by default.
pub fn fathom(pcap: &Path) -> Vec<L7Record> {
    match replay_file(pcap, &ReplayOptions::default()) {
        Ok(r) => r.l7().cloned().collect(),
        Err(e) => panic!("replay {}: {e}", pcap.display()),
    }
}

/// Compares two multisets of exchanges (already reduced to comparable tuples) and prints a
/// summary line; panics listing what only one side has.
pub fn agree<T: Ord + std::fmt::Debug + Clone>(what: &str, tshark: &[T], fathom: &[T]) {
    let mut a = tshark.to_vec();
    let mut b = fathom.to_vec();
    a.sort();
    b.sort();
    let mut only_t = Vec::new();
    let mut only_f = Vec::new();
    let (mut i, mut j, mut same) = (0, 0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                same += 1;
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                only_t.push(x.clone());
                i += 1;
            }
            (Some(_), Some(y)) => {
                only_f.push(y.clone());
                j += 1;
            }
            (Some(x), None) => {
                only_t.push(x.clone());
                i += 1;
            }
            (None, Some(y)) => {
                only_f.push(y.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    println!(
        "peers {what}: tshark {} exchanges, fathom {}, agreeing {same}",
        a.len(),
        b.len()
    );
    if !only_t.is_empty() || !only_f.is_empty() {
        panic!(
            "{what}: fathom and tshark disagree\n  only tshark: {only_t:#?}\n  only fathom: {only_f:#?}"
        );
    }
}

/// Client port of a row given the server port and the row's src/dst ports.
pub fn client_port(server: u16, src: &[String], dst: &[String]) -> u16 {
    let p = |v: &[String]| v.first().and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
    let (s, d) = (p(src), p(dst));
    if s == server {
        d
    } else {
        s
    }
}
