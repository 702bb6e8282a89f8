//! Shared pieces of the end-to-end tests: a lab with a unique name, an agent process bound to
//! it, and `fathom observe` as a user would run it. Every piece tears itself down on drop, so
//! a failing assertion leaves nothing behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fathom_lab::{LabGuard, LabSpec};
use serde_json::Value;

/// Lab tests share the host's cgroup root hooks and CPU: one at a time in this binary.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn fathom() -> &'static str {
    env!("CARGO_BIN_EXE_fathom")
}

pub const SPEC: &str = r#"
namespaces:
  - name: x
    labels: {team: blue}
    pods:
      - name: a
        labels: {pod: a, app: client}
  - name: y
    labels: {team: green}
    pods:
      - name: b
        labels: {pod: b, app: web}
        ports:
          - {name: http, port: 80, protocol: TCP}
          - {name: echo, port: 5353, protocol: UDP}
"#;

pub fn lab(prefix: &str) -> LabGuard {
    let spec = LabSpec::from_yaml(SPEC).expect("test spec");
    LabGuard::up_named(&spec, &fathom_lab::unique_name(prefix)).expect("lab up (are we root?)")
}

pub struct Agent {
    child: Child,
    pub socket: PathBuf,
    pub dir: tempfile::TempDir,
    /// The policy pin root this agent was given by `start_with` (not by the test), removed
    /// with its links once the agent has exited.
    own_policy_pins: Option<PathBuf>,
}

/// A pin directory under /sys/fs/bpf no other agent or test uses (`fathom-test-*`, which
/// scripts/check-clean.sh reports if left behind).
pub fn unique_pin_root(what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    PathBuf::from(format!(
        "/sys/fs/bpf/fathom-test-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Removes a policy pin root (detaching its pinned links) on drop, so a failing test
/// leaves no enforcement behind.
pub struct PolicyPins(pub PathBuf);

impl Drop for PolicyPins {
    fn drop(&mut self) {
        let _ = fathom_bpf::policy::remove_pins(&self.0);
    }
}

impl Agent {
    /// An agent watching `lab` only (its veths, its pods), with a short end linger so tests are
    /// quick and no metrics listener: agents of tests side by side never see each other's pods.
    pub fn start(lab: &LabGuard) -> Agent {
        Agent::start_with(lab, &["--web-address", "off"])
    }

    /// Unless `extra` names a `--policy-pin-root`, the agent pins its policy state in a
    /// directory of its own, removed when it is dropped: policy enforcement left in place by
    /// a test agent would otherwise outlive the test.
    pub fn start_with(lab: &LabGuard, extra: &[&str]) -> Agent {
        let own_policy_pins =
            (!extra.contains(&"--policy-pin-root")).then(|| unique_pin_root("agent"));
        let pins: Vec<&std::ffi::OsStr> = match &own_policy_pins {
            Some(p) => vec!["--policy-pin-root".as_ref(), p.as_os_str()],
            None => vec![],
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("fathom.sock");
        let log = std::fs::File::create(dir.path().join("agent.log")).expect("log file");
        // Each agent keeps its history in its own temp dir unless the test names one.
        let default_store = dir.path().join("flows.db");
        let store: &[&std::ffi::OsStr] = if extra.contains(&"--store-path") {
            &[]
        } else {
            &["--store-path".as_ref(), default_store.as_os_str()]
        };
        let child = Command::new(fathom())
            .args(["agent", "--attach", "lab", "--end-linger", "300ms", "--lab"])
            .arg(&lab.state().name)
            .args(extra)
            .args(store)
            .args(pins)
            .arg("--socket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn fathom agent");
        let mut a = Agent {
            child,
            socket,
            dir,
            own_policy_pins,
        };
        a.wait_ready();
        a
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("agent exited early ({st}):\n{}", self.log());
            }
            let ok = Command::new(fathom())
                .args(["status", "-o", "json", "--socket"])
                .arg(&self.socket)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            // Ready means attached: wait until the lab's interfaces are in the status.
            if ok
                && self.status()["kernel"]["interfaces"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("agent not ready after 30s:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    pub fn status(&self) -> Value {
        let out = Command::new(fathom())
            .args(["status", "-o", "json", "--socket"])
            .arg(&self.socket)
            .output()
            .expect("status");
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// `fathom observe ARGS -o jsonl` as records.
    pub fn observe(&self, args: &[&str]) -> Vec<Value> {
        let out = Command::new(fathom())
            .arg("observe")
            .args(args)
            .args(["-o", "jsonl", "--socket"])
            .arg(&self.socket)
            .output()
            .expect("observe");
        assert!(
            out.status.success(),
            "observe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("jsonl line"))
            .collect()
    }

    /// Poll `observe` until `pred` holds for the records or the time runs out.
    pub fn wait_for(
        &self,
        args: &[&str],
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let recs = self.observe(args);
            if pred(&recs) {
                return recs;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; last answer: {recs:#?}\nagent log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `fathom status` once `pred` holds of it, or the last one after 5 s (the caller's
    /// assertions then say what is missing). Parts of the status (L7, shield) are refreshed
    /// every second, so what the records already show may not be counted there yet.
    pub fn wait_status(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let st = self.status();
            if pred(&st) || Instant::now() > deadline {
                return st;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Agent {
    /// Send `signal` and wait for the agent to exit (SIGKILL after 10 s); its exit status.
    pub fn stop(&mut self, signal: i32) -> Option<std::process::ExitStatus> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Some(st);
        }
        // SAFETY: kill(2) on our own child's pid, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SIGINT, as Ctrl-C: the agent detaches its programs (pinned policy links stay) and
        // removes its socket.
        self.stop(libc::SIGINT);
        if let Some(p) = &self.own_policy_pins {
            let _ = fathom_bpf::policy::remove_pins(p);
        }
    }
}

/// A background process inside a pod, killed on drop.
pub struct Bg(pub Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nginx in `pod`, serving `body_len` bytes at /file on port 80 (IPv4 and IPv6), logging
/// `$request_length $bytes_sent $status` per request to `dir/access.log`.
pub fn nginx(pod: &fathom_lab::LabPod, dir: &Path, body_len: usize) -> Bg {
    nginx_with(
        pod,
        dir,
        body_len,
        80,
        "log_format fathom '$request_length $bytes_sent $status';\n  access_log {d}/access.log fathom;",
        "listen 80; listen [::]:80;",
    )
}

/// nginx in `pod` serving `dir/www/file` (`body_len` bytes) with the given `http` directives
/// and `server` listen lines (`{d}` in either stands for `dir`); returns once `port` listens.
pub fn nginx_with(
    pod: &fathom_lab::LabPod,
    dir: &Path,
    body_len: usize,
    port: u16,
    http: &str,
    server: &str,
) -> Bg {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::write(www.join("file"), vec![b'z'; body_len]).unwrap();
    let d = dir.display().to_string();
    let (http, server) = (http.replace("{d}", &d), server.replace("{d}", &d));
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; user root; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  {http}
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  server {{ {server} root {d}/www; }}
}}
"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = pod
        .command("nginx")
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nginx (apt-get install nginx)");
    listening(pod, child, port, Duration::from_secs(10), "nginx")
}

/// `child`, a server started in `pod`, once it listens on TCP `port`. Owned before the wait so
/// that a failed wait still stops it.
pub fn listening(
    pod: &fathom_lab::LabPod,
    child: Child,
    port: u16,
    timeout: Duration,
    what: &str,
) -> Bg {
    let bg = Bg(child);
    pod.wait_for_tcp_listen(port, timeout)
        .unwrap_or_else(|e| panic!("{what} listening on :{port}: {e}"));
    bg
}

/// `python3 -m http.server PORT` serving an empty `dir/www` in `pod`, listening when this returns.
pub fn http_server(pod: &fathom_lab::LabPod, dir: &Path, port: u16) -> Bg {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).expect("www dir");
    let child = pod
        .command("python3")
        .args(["-m", "http.server", &port.to_string(), "-d"])
        .arg(&www)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 http.server");
    listening(pod, child, port, Duration::from_secs(10), "http.server")
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap_or("")
}

pub fn u64_of(v: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_u64()
        .unwrap_or(u64::MAX)
}
