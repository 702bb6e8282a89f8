//! tls.bpf.c for real: a Python process (its `ssl` module uses the system libssl, through
//! SSL_write_ex/SSL_read_ex) runs a TLS server and client over loopback; the uprobes must
//! report the client's plaintext with exact bytes, lengths, direction, role and tuple, marked
//! TLS, and the ciphertext after the handshake must not cross the ring. Needs root, python3
//! and openssl.

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use fathom_bpf::abi::l7::{L7Counter, L7_PROTO_HTTP, L7_PROTO_TLS};
use fathom_bpf::l7::tls::{system_libssl, LibsslTracker};
use fathom_bpf::l7::{L7Config, L7Event, L7EventKind, L7Ring, L7Role, L7Sensor};

const SCRIPT: &str = r#"
import os, socket, ssl, sys, threading
cert, key = sys.argv[1], sys.argv[2]
if len(sys.argv) > 3:
    sys.stdin.readline()  # "go": the test has seen this process map its libssl
srv_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
srv_ctx.load_cert_chain(cert, key)
lsock = socket.socket()
lsock.bind(("127.0.0.1", 0))
lsock.listen(1)
port = lsock.getsockname()[1]
def serve():
    conn, _ = lsock.accept()
    with srv_ctx.wrap_socket(conn, server_side=True) as s:
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(4096)
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
t = threading.Thread(target=serve)
t.start()
cli_ctx = ssl.create_default_context()
cli_ctx.check_hostname = False
cli_ctx.verify_mode = ssl.CERT_NONE
with cli_ctx.wrap_socket(socket.create_connection(("127.0.0.1", port))) as c:
    cport = c.getsockname()[1]
    c.sendall(b"GET /tls-probe HTTP/1.1\r\nHost: test\r\n\r\n")
    resp = b""
    while not resp.endswith(b"ok"):
        resp += c.recv(4096)
t.join()
print(os.getpid(), port, cport, flush=True)
"#;

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("fathom-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate and its key in `dir`.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=test",
        ])
        .args(["-days", "1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    (cert, key)
}

/// Events of one process, read while it runs: other processes on the host fill the shared
/// ring too, so it is drained all along, not only once the process is done.
struct Collector {
    rb: L7Ring,
    got: Rc<RefCell<Vec<L7Event>>>,
}

impl Collector {
    fn new(s: &L7Sensor, pid: u32) -> Collector {
        let got = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&got);
        let rb = s
            .ring_buffer(
                move |e| {
                    if e.pid == pid {
                        sink.borrow_mut().push(e.clone())
                    }
                },
                || panic!("undecodable l7 record"),
            )
            .expect("ringbuf");
        Collector { rb, got }
    }

    fn poll(&self) {
        let _ = self.rb.poll(Duration::from_millis(20));
    }

    /// Drains the ring while `child` runs; its output.
    fn wait(&self, mut child: Child) -> Output {
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            self.poll();
        }
        child.wait_with_output().expect("wait")
    }

    /// Goes on until `until` says enough or 5 s pass; the events.
    fn finish(self, until: impl Fn(&[L7Event]) -> bool) -> Vec<L7Event> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !until(&self.got.borrow()) {
            self.poll();
        }
        let _ = self.rb.poll(Duration::ZERO);
        drop(self.rb);
        Rc::try_unwrap(self.got)
            .map(|c| c.into_inner())
            .unwrap_or_default()
    }
}

/// (pid, server port, client port) printed by SCRIPT; the pid must be the child's own.
fn script_output(out: &Output, pid: u32) -> (u16, u16) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<u32> = line
        .split_whitespace()
        .map(|n| n.parse().expect("number"))
        .collect();
    assert_eq!(nums.len(), 3, "{line}");
    assert_eq!(nums[0], pid, "python3 ran under another pid");
    (nums[1] as u16, nums[2] as u16)
}

#[test]
fn python_tls_client_plaintext_is_reported_once_marked_tls() {
    let s = L7Sensor::load(&L7Config::default()).expect("load l7.bpf.c (are we root?)");
    let tracker = LibsslTracker::start(&s);
    let attached = tracker.attached();
    assert!(
        attached.keys().any(|p| p.contains("libssl.so")),
        "no libssl attached: {attached:?} {:?}",
        tracker.warnings
    );

    let dir = TempDir::new("plain");
    let (cert, key) = certificate(&dir.0);
    let child = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(&cert)
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let pid = child.id();
    let events = Collector::new(&s, pid);
    let out = events.wait(child);
    let (port, cport) = script_output(&out, pid);
    check_plaintext(&s, events, port, cport);
}

/// The client's two plaintext events, exact, and no ciphertext after the handshake.
fn check_plaintext(s: &L7Sensor, events: Collector, port: u16, cport: u16) {
    let ev = events.finish(|e| {
        e.iter().filter(|e| e.tls).count() >= 2 && e.iter().any(|e| e.kind == L7EventKind::Close)
    });
    let req = b"GET /tls-probe HTTP/1.1\r\nHost: test\r\n\r\n";
    let tls: Vec<&L7Event> = ev.iter().filter(|e| e.tls).collect();
    assert_eq!(tls.len(), 2, "client write + client read only: {tls:#?}");
    let w = tls.iter().find(|e| e.egress).expect("client SSL_write");
    assert_eq!(w.data, req);
    assert_eq!(w.ret, req.len() as i64);
    assert_eq!(w.role, L7Role::Client);
    assert_eq!(w.protocol_guess, L7_PROTO_HTTP);
    assert_eq!((w.local.port(), w.remote.port()), (cport, port));
    assert_eq!(w.local.ip().to_string(), "127.0.0.1");
    assert_eq!(w.comm, "python3");
    assert!(!w.truncated);
    let r = tls.iter().find(|e| !e.egress).expect("client SSL_read");
    assert_eq!(r.data, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(r.fd, w.fd);
    assert_eq!((r.local.port(), r.remote.port()), (cport, port));

    // Ciphertext: only the handshake, before the first plaintext call; nothing from the
    // server end (its client is local).
    for e in ev.iter().filter(|e| !e.tls && e.kind == L7EventKind::Data) {
        assert_eq!(e.local.port(), cport, "server end shipped: {e:?}");
        assert_eq!(e.protocol_guess, L7_PROTO_TLS);
        assert!(e.ts_ns < w.ts_ns, "ciphertext after the handshake: {e:?}");
    }
    assert!(s.counter(L7Counter::TlsEvents) >= 2);
}

#[test]
fn a_private_libssl_copy_is_attached_while_mapped_then_detached() {
    let s = L7Sensor::load(&L7Config::default()).expect("load l7.bpf.c (are we root?)");
    let mut tracker = LibsslTracker::start(&s);
    let dir = TempDir::new("copy");
    let (cert, key) = certificate(&dir.0);
    // A libssl of its own (another inode), as a container or a bundled app would have: loaded
    // first, it also serves python's `_ssl` (same soname), so the system file is not used.
    let system = system_libssl();
    let original = system.first().expect("a system libssl to copy");
    let copy = dir.0.join("libssl.so.3");
    std::fs::copy(original, &copy).expect("copy libssl");
    let copy_name = copy.display().to_string();
    assert!(
        !tracker.attached().keys().any(|p| p.ends_with(&copy_name)),
        "attached before any process maps it"
    );

    let mut child = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(&cert)
        .arg(&key)
        .arg("wait")
        .env("LD_PRELOAD", &copy)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let pid = child.id();
    let events = Collector::new(&s, pid);
    let deadline = Instant::now() + Duration::from_secs(10);
    let users = loop {
        let next_scan = Instant::now() + Duration::from_millis(100);
        while Instant::now() < next_scan {
            events.poll();
        }
        tracker.rescan(&s);
        let found = tracker
            .attached()
            .into_iter()
            .find(|(p, _)| p.ends_with(&copy_name));
        if let Some((_, users)) = found {
            break users;
        }
        assert!(
            Instant::now() < deadline,
            "copy never attached: {:?} {:?}",
            tracker.attached(),
            tracker.warnings
        );
    };
    // python3 may be a shim (pyenv) whose helper processes inherit LD_PRELOAD for a moment.
    assert!(users >= 1, "the python process maps the copy");

    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("go");
    let out = events.wait(child);
    let (port, cport) = script_output(&out, pid);
    check_plaintext(&s, events, port, cport);

    // The process is gone: the copy is detached, the system library stays.
    tracker.rescan(&s);
    let after = tracker.attached();
    assert!(
        !after.keys().any(|p| p.ends_with(&copy_name)),
        "copy still attached: {after:?}"
    );
    assert!(after.keys().any(|p| p.ends_with("(system)")), "{after:?}");
}
