//! `fathom top` driven in a real terminal (tmux): it shows the lab's flows, pods and drops,
//! switches views and sorts on keys, and quits on q.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

struct Tmux(String);

impl Tmux {
    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, k: &str) {
        assert!(Command::new("tmux")
            .args(["send-keys", "-t", &self.0, k])
            .status()
            .unwrap()
            .success());
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {what}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.0])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

#[test]
fn top_shows_flows_pods_and_drops_and_reacts_to_keys() {
    let _s = serial();
    let lab = lab("e2etop");
    let agent = Agent::start(&lab);
    let a = lab.pod("x/a").unwrap().clone();
    let b = lab.pod("y/b").unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let _nginx = nginx(&b, dir.path(), 200_000);
    for _ in 0..3 {
        assert!(a
            .command("curl")
            .args(["-s", "-o", "/dev/null", &format!("http://{}/file", b.ipv4)])
            .status()
            .unwrap()
            .success());
    }
    let st = a
        .command("python3")
        .args(["-c", &format!("import socket\nsocket.socket(socket.AF_INET,socket.SOCK_DGRAM).sendto(b'x',('{}',7777))", b.ipv4)])
        .status()
        .unwrap();
    assert!(st.success());

    let session = Tmux(format!("fathom-top-{}", std::process::id()));
    let cmd = format!(
        "{} top --interval 300ms --socket {}",
        fathom(),
        agent.socket.display()
    );
    assert!(Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session.0,
            "-x",
            "160",
            "-y",
            "40",
            &cmd
        ])
        .status()
        .unwrap()
        .success());

    let s = session.wait_for("the curl flows", |s| {
        s.matches("x/a:").count() >= 3 && s.contains("y/b:80")
    });
    assert!(
        s.contains("SOURCE") && s.contains("BYTES") && s.contains("sort: bytes"),
        "{s}"
    );
    assert!(s.contains("curl["), "client process shown:\n{s}");

    session.keys("2");
    let s = session.wait_for("the pods view", |s| {
        s.contains("POD") && s.contains("RECEIVED")
    });
    assert!(s.contains("x/a") && s.contains("y/b"), "{s}");
    // y/b sent three 200 kB responses.
    assert!(s.contains("KiB") || s.contains("MiB"), "{s}");

    session.keys("s");
    session.wait_for("sort by packets", |s| s.contains("sort: packets"));

    session.keys("3");
    let s = session.wait_for("the drops view", |s| {
        s.contains("REASON") && s.contains("NO_SOCKET")
    });
    assert!(s.contains("y/b"), "{s}");

    session.keys("q");
    let deadline = Instant::now() + Duration::from_secs(5);
    while session.alive() {
        assert!(Instant::now() < deadline, "top did not quit on q");
        std::thread::sleep(Duration::from_millis(100));
    }
}
