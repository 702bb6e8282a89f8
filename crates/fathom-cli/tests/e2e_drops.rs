//! Kernel drop reasons end to end: provoke drops inside lab pods with real tools and read the
//! agent's drop records and exact per-reason counters back. Needs root and iptables.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::*;

fn count(recs: &[Value], reason: &str) -> u64 {
    recs.iter()
        .filter(|r| r["reason"] == reason)
        .map(|r| 1 + r["suppressed"].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn closed_port_netfilter_and_full_queue_drops_are_reported_with_reasons() {
    let _s = serial();
    let lab = lab("e2edrop");
    let agent = Agent::start(&lab);
    let a = lab.pod("x/a").unwrap().clone();
    let b = lab.pod("y/b").unwrap().clone();

    // 1. A datagram to a closed UDP port: the stack finds no socket.
    let st = a
        .command("python3")
        .args(["-c", &format!("import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.sendto(b'x',('{}',7777))", b.ipv4)])
        .status()
        .unwrap();
    assert!(st.success());

    // 2. An iptables DROP rule inside pod y/b (its own netns: the host's rules are untouched).
    let st = b
        .command("iptables")
        .args(["-A", "INPUT", "-p", "tcp", "--dport", "9999", "-j", "DROP"])
        .status()
        .expect("iptables");
    assert!(st.success(), "iptables in the pod");
    let st = a
        .command("curl")
        .args(["-s", "-m", "1", &format!("http://{}:9999/", b.ipv4)])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success(), "the DROP rule must eat the SYN");

    // 3. A full socket queue: a receiver with the smallest buffer that never reads.
    let rx = b
        .command("python3")
        .args(["-c", "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,1)\ns.bind(('0.0.0.0',6666))\nprint('ready',flush=True)\ntime.sleep(30)"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut rx = Bg(rx);
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(rx.0.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
    }
    let st = a
        .command("python3")
        .args(["-c", &format!("import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range(300): s.sendto(b'y'*1200,('{}',6666))", b.ipv4)])
        .status()
        .unwrap();
    assert!(st.success());

    let args = ["--type", "drop", "--to-pod", "y/b"];
    let recs = agent.wait_for(&args, "drops of all three kinds", |r| {
        count(r, "NO_SOCKET") >= 1
            && count(r, "NETFILTER_DROP") >= 1
            && count(r, "SOCKET_RCVBUFF") >= 1
    });

    let no_sock = recs.iter().find(|r| r["reason"] == "NO_SOCKET").unwrap();
    assert_eq!(no_sock["type"], "drop");
    assert_eq!(u64_of(no_sock, &["destination", "port"]), 7777);
    assert_eq!(str_of(no_sock, &["source", "pod"]), "a");
    assert_eq!(str_of(no_sock, &["destination", "pod"]), "b");
    assert_eq!(str_of(no_sock, &["protocol"]), "udp");
    let loc = str_of(no_sock, &["location"]);
    assert!(
        loc.contains("udp") && loc.contains("+0x"),
        "call site symbolised from kallsyms: {loc}"
    );

    let nf = recs
        .iter()
        .find(|r| r["reason"] == "NETFILTER_DROP")
        .unwrap();
    assert_eq!(u64_of(nf, &["destination", "port"]), 9999);
    assert_eq!(str_of(nf, &["protocol"]), "tcp");
    // curl retried the SYN within its 1 s timeout: every one of them was dropped.
    assert!(count(&recs, "NETFILTER_DROP") >= 1);

    let full = count(&recs, "SOCKET_RCVBUFF");
    assert!(
        full >= 100,
        "most of 300 datagrams overflowed a 1-byte receive buffer: {full}"
    );
    let full_rec = recs
        .iter()
        .find(|r| r["reason"] == "SOCKET_RCVBUFF")
        .unwrap();
    assert_eq!(u64_of(full_rec, &["destination", "port"]), 6666);

    // The kernel's per-reason counters are exact, and at least what the records account for.
    // The status snapshot is refreshed every second by the kernel thread: poll, bounded.
    let reasons = ["NO_SOCKET", "NETFILTER_DROP", "SOCKET_RCVBUFF"];
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let st = agent.status();
        let drops = &st["kernel"]["drops"];
        let ok = reasons
            .iter()
            .all(|r| drops[*r].as_u64().unwrap_or(0) >= count(&recs, r));
        if ok {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kernel counters below reported drops: {drops:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // `fathom drops` renders the summary with those reasons.
    let out = std::process::Command::new(fathom())
        .args(["drops", "--pod", "y/b", "--socket"])
        .arg(&agent.socket)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for want in [
        "DROPS BY REASON",
        "NO_SOCKET",
        "NETFILTER_DROP",
        "SOCKET_RCVBUFF",
        "y/b",
    ] {
        assert!(text.contains(want), "missing {want} in:\n{text}");
    }
    drop(rx);
}
