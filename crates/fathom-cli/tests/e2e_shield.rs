//! The XDP shield end to end: `fathom block` of a lab pod's address stops its traffic at once,
//! `unblock` restores it, the block survives an agent restart (pinned map), bad CIDRs are
//! refused with nothing applied, and every change is audited as an alert record.
//! Needs root; the shield's pins live in a unique directory under /sys/fs/bpf, removed at the end.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

fn fathom_cmd(args: &[&str], socket: &std::path::Path) -> Output {
    Command::new(fathom())
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .expect("run fathom")
}

/// One ICMP echo from `from` to `to`, 300 ms to answer.
fn ping(from: &fathom_lab::LabPod, to: std::net::Ipv4Addr) -> bool {
    from.command("ping")
        .args(["-c", "1", "-W", "0.3", &to.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

struct Pins(std::path::PathBuf);
impl Drop for Pins {
    fn drop(&mut self) {
        let _ = fathom_bpf::shield::remove_pins(&self.0);
    }
}

fn shield_ready(agent: &Agent) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = agent.status();
        if st["shield"]["interfaces"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            return st["shield"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "shield never attached: {}\n{}",
            st["shield"],
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn block_stops_a_pod_at_once_survives_restart_and_unblock_restores() {
    let _s = serial();
    let lab = lab("e2eshield");
    let a = lab.pod("x/a").unwrap().clone();
    let b = lab.pod("y/b").unwrap().clone();
    let pin_root = std::path::PathBuf::from(format!(
        "/sys/fs/bpf/fathom-test-{}",
        fathom_lab::unique_name("shield")
    ));
    let _pins = Pins(pin_root.clone());
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("fathom.yaml");
    std::fs::write(
        &cfg,
        format!(
            "shield:\n  enabled: true\n  mode: enforce\n  pin_root: {}\n",
            pin_root.display()
        ),
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap();

    let agent = Agent::start_with(&lab, &["--web-address", "off", "-c", cfg_s]);
    let sh = shield_ready(&agent);
    for i in sh["interfaces"].as_array().unwrap() {
        let mode = i["mode"].as_str().unwrap();
        assert!(mode == "native" || mode == "generic", "{i}");
    }
    eprintln!("shield attached: {}", sh["interfaces"]);
    assert!(ping(&a, b.ipv4), "a reaches b before any block");

    // Bad CIDRs: refused with a reason, nothing applied.
    for bad in ["10.0.0.7/24", "300.1.1.1", "10.0.0.0/33", "fd00::/129", ""] {
        let out = fathom_cmd(&["block", bad], &agent.socket);
        assert!(!out.status.success(), "{bad:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("CIDR") || err.contains("address"),
            "{bad:?}: {err}"
        );
    }
    let blocks = fathom_cmd(&["blocks", "-o", "json"], &agent.socket);
    let list: Vec<Value> = serde_json::from_slice(&blocks.stdout).unwrap();
    assert!(list.is_empty(), "nothing half-applied: {list:?}");

    // Block a's address: the very first probe after the command returns is dropped.
    let t = Instant::now();
    let out = fathom_cmd(
        &["block", &a.ipv4.to_string(), "--reason", "e2e test"],
        &agent.socket,
    );
    let applied = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!ping(&a, b.ipv4), "blocked source still gets through");
    eprintln!(
        "block applied (CLI round trip incl. map update) in {:.1} ms",
        applied.as_secs_f64() * 1e3
    );
    let table =
        String::from_utf8_lossy(&fathom_cmd(&["status"], &agent.socket).stdout).into_owned();
    assert!(
        table.contains("SHIELD") && table.contains("mode enforce, 1 blocked CIDRs"),
        "{table}"
    );
    assert!(
        table.contains("xdp native") || table.contains("xdp generic"),
        "{table}"
    );
    let blocks_table =
        String::from_utf8_lossy(&fathom_cmd(&["blocks"], &agent.socket).stdout).into_owned();
    assert!(
        blocks_table.contains(&format!("{}/32", a.ipv4)) && blocks_table.contains("e2e test"),
        "{blocks_table}"
    );
    let st = agent.status();
    let dropped = st["shield"]["counters"]["drops"]["blocklist"]
        .as_u64()
        .unwrap();
    assert!(dropped >= 1, "{}", st["shield"]);

    let list: Vec<Value> =
        serde_json::from_slice(&fathom_cmd(&["blocks", "-o", "json"], &agent.socket).stdout)
            .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["cidr"], format!("{}/32", a.ipv4));
    assert_eq!(list[0]["reason"], "e2e test");
    assert_eq!(list[0]["origin"], "operator");
    assert!(list[0]["expires_in_secs"].is_null());

    // Restart: the pinned blocklist is re-adopted and enforced again once attached.
    drop(agent);
    let agent = Agent::start_with(&lab, &["--web-address", "off", "-c", cfg_s]);
    shield_ready(&agent);
    let list: Vec<Value> =
        serde_json::from_slice(&fathom_cmd(&["blocks", "-o", "json"], &agent.socket).stdout)
            .unwrap();
    assert_eq!(list.len(), 1, "block survives the restart");
    assert_eq!(
        list[0]["reason"], "e2e test",
        "and so does its reason (pinned notes)"
    );
    assert!(!ping(&a, b.ipv4), "still blocked after restart");

    // Unblock restores; unblocking again says it was not there.
    let out = fathom_cmd(&["unblock", &a.ipv4.to_string()], &agent.socket);
    assert!(out.status.success());
    assert!(ping(&a, b.ipv4), "traffic restored after unblock");
    let out = fathom_cmd(&["unblock", &a.ipv4.to_string()], &agent.socket);
    assert_eq!(out.status.code(), Some(1));

    // A timed block lapses and is reaped, audited.
    let out = fathom_cmd(
        &["block", &a.ipv4.to_string(), "--for", "1s"],
        &agent.socket,
    );
    assert!(out.status.success());
    assert!(!ping(&a, b.ipv4));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(ping(&a, b.ipv4), "expired block no longer drops");

    let deadline = Instant::now() + Duration::from_secs(5);
    let kinds = loop {
        let recs = agent.observe(&["--type", "alert"]);
        // Only the audit trail: detectors may alert on other tests' lab traffic meanwhile.
        let kinds: Vec<String> = recs
            .iter()
            .map(|r| r["kind"].as_str().unwrap_or("").to_string())
            .filter(|k| k.starts_with("shield_"))
            .collect();
        if kinds.iter().any(|k| k == "shield_expired") || Instant::now() > deadline {
            break kinds;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        kinds,
        ["shield_unblock", "shield_block", "shield_expired"],
        "audit trail of the second agent run"
    );
    drop(agent);

    let out = Command::new(fathom())
        .args(["uninstall", "--shield-pin-root"])
        .arg(&pin_root)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!pin_root.exists(), "uninstall removes the pins");
}

#[test]
fn bad_shield_config_and_rule_files_stop_the_agent_before_anything_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let pin_root = std::path::PathBuf::from(format!(
        "/sys/fs/bpf/fathom-test-{}",
        fathom_lab::unique_name("badcfg")
    ));
    let _pins = Pins(pin_root.clone());
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - id: ok\n    match: {http_path: /etc/passwd}\n  - id: broken\n    match:\n      tls_sni: \"[unclosed\"\n",
    )
    .unwrap();
    for (cfg, want) in [
        (
            format!(
                "shield:\n  enabled: true\n  allowlist: [10.0.0.0/8, 10.1.2.3/16]\n  pin_root: {}\n",
                pin_root.display()
            ),
            "shield.allowlist[1]: CIDR 10.1.2.3/16 has host bits set",
        ),
        (
            format!(
                "shield:\n  enabled: true\n  syn_per_sec: 10\n  pin_root: {}\n",
                pin_root.display()
            ),
            "needs a burst",
        ),
        (
            format!("detect:\n  signatures: {}\n", rules.display()),
            "line 6: rule broken: tls_sni: invalid regex",
        ),
    ] {
        let path = dir.path().join("fathom.yaml");
        std::fs::write(&path, cfg).unwrap();
        let out = Command::new(fathom())
            .args(["agent", "--web-address", "off", "-c"])
            .arg(&path)
            .arg("--socket")
            .arg(dir.path().join("s.sock"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted: {err}");
        assert!(err.contains(want), "want {want:?} in: {err}");
        assert!(!pin_root.exists(), "nothing pinned for a refused config");
    }
}
