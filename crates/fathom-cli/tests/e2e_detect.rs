//! Detection end to end with real attack tools, bounded and only against lab pods: nmap SYN
//! and UDP scans raise port-scan alerts naming the scanning pod while single-port use does
//! not; an hping3 SYN flood raises a SYN-flood alert; with the shield enforcing a per-source
//! SYN limit the flood is dropped and counted while a legit client keeps being served, and in
//! monitor mode nothing is dropped. Needs root, nmap, hping3, nginx, curl.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fathom_lab::{LabGuard, LabPod, LabSpec};
use serde_json::Value;
use support::*;

const SPEC3: &str = r#"
namespaces:
  - name: x
    pods:
      - name: a
        labels: {app: attacker}
      - name: c
        labels: {app: client}
  - name: y
    pods:
      - name: b
        labels: {app: web}
        ports:
          - {name: http, port: 80, protocol: TCP}
"#;

fn lab3() -> LabGuard {
    let spec = LabSpec::from_yaml(SPEC3).expect("spec");
    LabGuard::up_named(&spec, &fathom_lab::unique_name("e2edet")).expect("lab up")
}

fn alerts(agent: &Agent) -> Vec<Value> {
    agent.observe(&["--type", "alert"])
}

fn wait_alert(agent: &Agent, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(a) = alerts(agent).into_iter().find(|a| pred(a)) {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} alert; alerts: {:#?}\n{}",
            alerts(agent),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn run_bounded(pod: &LabPod, secs: u32, prog: &str, args: &[&str]) {
    let st = pod
        .command("timeout")
        .arg(secs.to_string())
        .arg(prog)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{prog}: {e} (apt-get install {prog})"));
    // timeout's 124 is fine for a flood cut short; anything that did not start is not.
    assert!(st.code().is_some(), "{prog} killed by a signal");
}

fn curl_ok(pod: &LabPod, ip: std::net::Ipv4Addr) -> bool {
    pod.command("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "3",
            &format!("http://{ip}/file"),
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn is_pod(ep: &Value, ns: &str, pod: &str) -> bool {
    ep["namespace"] == ns && ep["pod"] == pod
}

#[test]
fn nmap_scans_alert_naming_the_scanner_and_single_port_use_does_not() {
    let _s = serial();
    let lab = lab3();
    let a = lab.pod("x/a").unwrap().clone();
    let b = lab.pod("y/b").unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let _web = nginx(&b, dir.path(), 100);
    let agent = Agent::start(&lab);
    let bip = b.ipv4.to_string();

    // Legit use of one port: curl, and nmap of that one port.
    assert!(curl_ok(&a, b.ipv4));
    assert!(curl_ok(&a, b.ipv4));
    run_bounded(&a, 30, "nmap", &["-sS", "-Pn", "-n", "-p", "80", &bip]);
    std::thread::sleep(Duration::from_secs(2));
    let got = alerts(&agent);
    assert!(got.is_empty(), "single-port use raised alerts: {got:#?}");

    // SYN scan of 300 ports.
    run_bounded(
        &a,
        60,
        "nmap",
        &[
            "-sS",
            "-Pn",
            "-n",
            "-T4",
            "--max-retries",
            "0",
            "-p",
            "1-300",
            &bip,
        ],
    );
    let syn = wait_alert(&agent, "SYN scan", |x| {
        x["kind"] == "port_scan" && x["details"]["scan_type"] == "syn"
    });
    assert!(is_pod(&syn["source"], "x", "a"), "{syn:#}");
    assert!(is_pod(&syn["destination"], "y", "b"), "{syn:#}");
    assert_eq!(syn["details"]["direction"], "vertical");
    assert!(syn["evidence"]["distinct_ports"].as_f64().unwrap() >= 20.0);
    eprintln!("SYN scan alert: {}", syn["summary"]);

    // UDP scan of 100 ports.
    run_bounded(
        &a,
        60,
        "nmap",
        &[
            "-sU",
            "-Pn",
            "-n",
            "-T5",
            "--max-retries",
            "0",
            "--host-timeout",
            "40s",
            "-p",
            "1-100",
            &bip,
        ],
    );
    let udp = wait_alert(&agent, "UDP scan", |x| {
        x["kind"] == "port_scan" && x["details"]["scan_type"] == "udp"
    });
    assert!(is_pod(&udp["source"], "x", "a"), "{udp:#}");
    eprintln!("UDP scan alert: {}", udp["summary"]);

    // `fathom alerts -o json` answers the same records.
    let out = Command::new(fathom())
        .args(["alerts", "-o", "jsonl", "--socket"])
        .arg(&agent.socket)
        .output()
        .unwrap();
    assert!(out.status.success());
    let n = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(n, alerts(&agent).len());
}

struct Pins(std::path::PathBuf);
impl Drop for Pins {
    fn drop(&mut self) {
        let _ = fathom_bpf::shield::remove_pins(&self.0);
    }
}

fn shield_counters(agent: &Agent) -> Value {
    agent.status()["shield"]["counters"].clone()
}

fn wait_shield(agent: &Agent) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let attached = |st: Value| {
        st["shield"]["interfaces"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    };
    while !attached(agent.status()) {
        assert!(
            Instant::now() < deadline,
            "shield not attached\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Flood from `a` while `c` makes requests; returns how many of c's requests succeeded.
fn flood_with_client(a: &LabPod, c: &LabPod, b: &LabPod) -> (usize, usize) {
    let target = b.ipv4.to_string();
    let mut flood = a
        .command("timeout")
        .args([
            "20", "hping3", "-S", "-p", "80", "-c", "20000", "--faster", &target,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hping3");
    std::thread::sleep(Duration::from_millis(200));
    let mut ok = 0;
    let tries = 10;
    for _ in 0..tries {
        if curl_ok(c, b.ipv4) {
            ok += 1;
        }
    }
    let _ = flood.wait();
    (ok, tries)
}

#[test]
fn syn_flood_alert_and_shield_drops_in_enforce_but_not_in_monitor() {
    let _s = serial();
    let lab = lab3();
    let a = lab.pod("x/a").unwrap().clone();
    let c = lab.pod("x/c").unwrap().clone();
    let b = lab.pod("y/b").unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let _web = nginx(&b, dir.path(), 100);
    let pin_root = std::path::PathBuf::from(format!(
        "/sys/fs/bpf/fathom-test-{}",
        fathom_lab::unique_name("det")
    ));
    let _pins = Pins(pin_root.clone());
    let cfg = dir.path().join("fathom.yaml");
    let write_cfg = |mode: &str| {
        std::fs::write(
            &cfg,
            format!(
                "shield:\n  enabled: true\n  mode: {mode}\n  syn_per_sec: 50\n  syn_burst: 100\n  pin_root: {}\n",
                pin_root.display()
            ),
        )
        .unwrap();
    };

    // Monitor: the flood reaches the server (and the detector), nothing is dropped.
    write_cfg("monitor");
    let agent = Agent::start_with(&lab, &["--web-address", "off", "-c", cfg.to_str().unwrap()]);
    wait_shield(&agent);
    let (ok, tries) = flood_with_client(&a, &c, &b);
    assert_eq!(ok, tries, "legit client failed during the flood (monitor)");
    let flood = wait_alert(&agent, "SYN flood", |x| {
        x["kind"] == "syn_flood" && x["details"]["seen_by"].is_null()
    });
    eprintln!(
        "SYN flood alert: {} evidence {}",
        flood["summary"], flood["evidence"]
    );
    assert!(is_pod(&flood["source"], "x", "a"), "{flood:#}");
    assert!(is_pod(&flood["destination"], "y", "b"), "{flood:#}");
    assert!(flood["evidence"]["half_open"].as_f64().unwrap() >= 200.0);
    let m = shield_counters(&agent);
    eprintln!("monitor counters: {m}");
    assert_eq!(m["stats"]["dropped"], 0, "monitor mode dropped packets");
    assert!(m["stats"]["monitored"].as_u64().unwrap() > 0);
    assert!(m["drops"]["syn_rate"].as_u64().unwrap() > 0);
    drop(agent);

    // Enforce: the flood's SYNs beyond the bucket are dropped and counted; c is still served.
    write_cfg("enforce");
    let agent = Agent::start_with(&lab, &["--web-address", "off", "-c", cfg.to_str().unwrap()]);
    wait_shield(&agent);
    let before = shield_counters(&agent);
    let (ok, tries) = flood_with_client(&a, &c, &b);
    assert_eq!(ok, tries, "legit client failed during the flood (enforce)");
    let after = shield_counters(&agent);
    eprintln!("enforce counters: {after}");
    let d = |v: &Value| v["stats"]["dropped"].as_u64().unwrap_or(0);
    let s = |v: &Value| v["drops"]["syn_rate"].as_u64().unwrap_or(0);
    let dropped = d(&after) - d(&before);
    assert!(dropped > 1000, "flood not dropped: {dropped}");
    assert_eq!(
        dropped,
        s(&after) - s(&before),
        "every drop is a SYN-rate drop"
    );
    eprintln!(
        "enforce: {dropped} flood packets dropped at XDP, legit client {ok}/{tries} requests served"
    );
    // The flow sensor never saw the dropped SYNs; the shield's counters name the flood.
    let flood = wait_alert(&agent, "shield SYN flood", |x| {
        x["kind"] == "syn_flood" && x["details"]["seen_by"] == "shield"
    });
    eprintln!(
        "enforce-mode alert: {} evidence {}",
        flood["summary"], flood["evidence"]
    );
    assert!(is_pod(&flood["source"], "x", "a"), "{flood:#}");
    assert!(is_pod(&flood["destination"], "y", "b"), "{flood:#}");
}
