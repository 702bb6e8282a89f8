//! Real labs (needs root): netns, veths, a bridge, cgroups, real servers and clients. Every lab gets a unique name
//! and is torn down by a `LabGuard` even when an assertion fails. No traffic leaves the lab: the only addresses used
//! are the pods' own, plus TEST-NET addresses that fail with ENETUNREACH before any packet is sent.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use fathom_lab::{
    down, leftover_items, leftovers, leftovers_of, list_labs, load_lab, unique_name, FailPoint,
    Lab, LabError, LabGuard, LabPod, LabSpec, LabState, UpOptions, NAMESPACE_NAME_LABEL,
};

/// Tests that look at *all* lab objects on the host take this for writing; the others for reading, so they can run
/// in parallel with each other but not with a global check.
static HOST: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    require_root();
    HOST.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    require_root();
    HOST.write().unwrap_or_else(|e| e.into_inner())
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the lab tests create netns, links and cgroups: run them as root"
    );
}

/// 2 namespaces x 2 pods.
fn spec_2x2() -> LabSpec {
    LabSpec::from_yaml(
        r#"
namespaces:
  - name: x
    labels: {team: blue}
    pods:
      - {name: a, labels: {app: web}, ports: [{name: http, port: 8080}]}
      - {name: b, labels: {app: client}}
  - name: y
    pods:
      - {name: c, labels: {app: web}}
      - {name: d}
"#,
    )
    .expect("valid spec")
}

fn spec_pair() -> LabSpec {
    LabSpec::from_yaml("namespaces: [{name: n, pods: [{name: s}, {name: c}]}]").expect("valid spec")
}

fn pod<'a>(lab: &'a LabState, name: &str) -> &'a LabPod {
    lab.pod(name)
        .unwrap_or_else(|| panic!("pod {name} in lab {}", lab.name))
}

fn ip_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Array(Vec::new()))
}

fn dev_ino(path: &Path) -> (u64, u64) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (m.dev(), m.ino())
}

/// The `0::` line of /proc/PID/cgroup.
fn cgroup_v2_of(pid: u32) -> String {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/PID/cgroup");
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("0:: line")
        .to_string()
}

/// The cgroup path as /proc/PID/cgroup shows it: relative to the cgroup2 mount.
fn cgroup_rel(lab: &LabState, pod: &LabPod) -> String {
    let mount = lab
        .cgroup_dir
        .parent()
        .and_then(Path::parent)
        .expect("<mount>/fathom-lab/<id>");
    format!(
        "/{}",
        pod.cgroup_path
            .strip_prefix(mount)
            .expect("under mount")
            .display()
    )
}

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Kill and reap a child on scope exit (if the lab's `down` has not already).
struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn curl(from: &LabPod, url: &str) -> Output {
    from.command("curl")
        .args(["-sS", "--max-time", "5", "--noproxy", "*", url])
        .output()
        .expect("spawn curl")
}

#[test]
fn real_lab_end_to_end() {
    let _host = shared();
    let name = unique_name("t-real");
    let lab = LabGuard::up_named(&spec_2x2(), &name).expect("up");
    let (a, b, c) = (pod(&lab, "x/a"), pod(&lab, "x/b"), pod(&lab, "y/c"));

    // --- inventory
    assert_eq!(lab.name, name);
    assert_eq!(lab.id.len(), 6);
    assert_eq!(lab.pods.len(), 4);
    assert_eq!(load_lab(&name).expect("load_lab"), *lab.state());
    assert!(list_labs()
        .expect("list_labs")
        .iter()
        .any(|l| l.name == name));
    assert!(lab.state_file().exists());
    assert_eq!(
        lab.namespace_labels("x")
            .and_then(|l| l.get(NAMESPACE_NAME_LABEL))
            .map(String::as_str),
        Some("x")
    );
    assert_eq!(
        a.namespace_labels.get("team").map(String::as_str),
        Some("blue")
    );
    assert_eq!(a.ports[0].name.as_deref(), Some("http"));
    assert_eq!(
        lab.pod_by_ip(IpAddr::V6(c.ipv6)).map(LabPod::full_name),
        Some("y/c".to_string())
    );
    assert_eq!(
        lab.pod_by_cgroup_id(b.cgroup_id).map(LabPod::full_name),
        Some("x/b".to_string())
    );
    assert_eq!(
        lab.pod_by_host_ifindex(c.host_ifindex)
            .map(LabPod::full_name),
        Some("y/c".to_string())
    );
    let v4: BTreeSet<_> = lab.pods.iter().map(|p| p.ipv4).collect();
    let v6: BTreeSet<_> = lab.pods.iter().map(|p| p.ipv6).collect();
    assert_eq!((v4.len(), v6.len()), (4, 4), "addresses are distinct");
    assert!(lab
        .pods
        .iter()
        .all(|p| lab.ipv4_subnet.contains(&p.ipv4) && lab.ipv6_subnet.contains(&p.ipv6)));

    // --- bridge: exists, up, no address at all, br_netfilter calls off
    let br = &ip_json(&["-d", "-j", "addr", "show", "dev", &lab.bridge])[0];
    assert_eq!(br["ifindex"].as_u64(), Some(u64::from(lab.bridge_ifindex)));
    assert!(br["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .any(|f| f == "UP"));
    assert_eq!(
        br["addr_info"].as_array().map(Vec::len),
        Some(0),
        "bridge has no IP address: {br}"
    );
    let info = &br["linkinfo"]["info_data"];
    for key in ["nf_call_iptables", "nf_call_ip6tables", "nf_call_arptables"] {
        assert_eq!(info[key].as_u64(), Some(0), "{key}");
    }

    for p in &lab.pods {
        // --- netns and cgroup exist; cgroup id is the directory inode
        assert!(p.netns_path().exists(), "netns {}", p.netns);
        assert!(p.cgroup_path.is_dir(), "cgroup {}", p.cgroup_path.display());
        assert_eq!(
            p.cgroup_id,
            std::fs::metadata(&p.cgroup_path)
                .expect("stat cgroup")
                .ino()
        );
        // --- host veth: enslaved to the bridge, up, no address, right ifindex
        let veth = &ip_json(&["-j", "addr", "show", "dev", &p.host_veth])[0];
        assert_eq!(
            veth["master"].as_str(),
            Some(lab.bridge.as_str()),
            "{} enslaved",
            p.host_veth
        );
        assert_eq!(veth["ifindex"].as_u64(), Some(u64::from(p.host_ifindex)));
        assert_eq!(veth["operstate"].as_str(), Some("UP"));
        assert_eq!(
            veth["addr_info"].as_array().map(Vec::len),
            Some(0),
            "host veth has no address: {veth}"
        );
        // --- inside: eth0 with both addresses and the recorded MAC, lo up, no default route
        let eth0 = &ip_json(&["-n", &p.netns, "-j", "addr", "show", "dev", &p.pod_ifname])[0];
        assert_eq!(eth0["address"].as_str(), Some(p.pod_mac.as_str()));
        let addrs: Vec<&str> = eth0["addr_info"]
            .as_array()
            .expect("addr_info")
            .iter()
            .filter_map(|a| a["local"].as_str())
            .collect();
        assert!(addrs.contains(&p.ipv4.to_string().as_str()), "{addrs:?}");
        assert!(addrs.contains(&p.ipv6.to_string().as_str()), "{addrs:?}");
        let lo = &ip_json(&["-n", &p.netns, "-j", "link", "show", "dev", "lo"])[0];
        assert!(lo["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .any(|f| f == "UP"));
        for family in ["-4", "-6"] {
            let default = ip_json(&["-n", &p.netns, family, "-j", "route", "show", "default"]);
            assert_eq!(
                default.as_array().map(Vec::len).unwrap_or(0),
                0,
                "{} has a default route: {default}",
                p.netns
            );
        }
    }

    // --- leftovers() sees the live lab (so an empty answer after `down` means something)
    let kinds: BTreeSet<&str> = leftover_items()
        .iter()
        .filter(|l| l.lab_id.as_deref() == Some(&lab.id))
        .map(|l| l.kind)
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "cgroup",
            "link",
            "netns",
            "state file",
            "subnet reservation"
        ])
    );

    // --- a real HTTP server in x/a, real curl from y/c (other namespace) and x/b, over IPv4 and IPv6
    let docroot = std::env::temp_dir().join(format!("fathom-lab-test-{}", lab.id));
    std::fs::create_dir_all(&docroot).expect("docroot");
    let body = format!("hello from {} in lab {}\n", a.full_name(), lab.id);
    std::fs::write(docroot.join("hello.txt"), &body).expect("write body");
    let server = Reap(
        a.command(python())
            .args(["-m", "http.server", "8080", "--bind", "::"])
            .current_dir(&docroot)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn http.server"),
    );
    a.wait_for_tcp_listen(8080, Duration::from_secs(10))
        .expect("http.server listens");
    assert_eq!(
        cgroup_v2_of(server.0.id()),
        cgroup_rel(&lab, a),
        "server runs in the pod cgroup"
    );
    for (client, url) in [
        (c, format!("http://{}:8080/hello.txt", a.ipv4)),
        (c, format!("http://[{}]:8080/hello.txt", a.ipv6)),
        (b, format!("http://{}:8080/hello.txt", a.ipv4)),
    ] {
        let out = curl(client, &url);
        assert!(
            out.status.success(),
            "curl {url} from {}: {}",
            client.full_name(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            body,
            "response to {url}"
        );
    }

    // --- command(): the child's own pid is in the pod cgroup and the pod netns
    let sleeper = Reap(b.command("sleep").arg("30").spawn().expect("spawn sleep"));
    let pid = sleeper.0.id();
    assert_eq!(cgroup_v2_of(pid), cgroup_rel(&lab, b));
    assert_eq!(
        dev_ino(Path::new(&format!("/proc/{pid}/ns/net"))),
        dev_ino(&b.netns_path())
    );
    assert_ne!(
        dev_ino(Path::new(&format!("/proc/{pid}/ns/net"))),
        dev_ino(Path::new("/proc/self/ns/net"))
    );
    let procs = std::fs::read_to_string(b.cgroup_path.join("cgroup.procs")).expect("cgroup.procs");
    assert!(
        procs.lines().any(|l| l.trim() == pid.to_string()),
        "{pid} in {procs}"
    );

    // --- nothing outside the lab is reachable: no route, so connect fails before sending anything
    let unreachable = b
        .in_netns(|| {
            [
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            ]
            .map(|ip| {
                TcpStream::connect_timeout(&SocketAddr::new(ip, 80), Duration::from_secs(1))
                    .map(drop)
            })
        })
        .expect("in_netns");
    for r in unreachable {
        assert_eq!(
            r.as_ref().err().and_then(std::io::Error::raw_os_error),
            Some(libc::ENETUNREACH),
            "{r:?}"
        );
    }

    // --- down: kills the pods' processes, removes everything, and is idempotent
    let (id, state) = (lab.id.clone(), lab.state().clone());
    lab.down().expect("down");
    let mut server = server;
    let mut sleeper = sleeper;
    assert_eq!(
        server.0.wait().expect("wait server").signal(),
        Some(libc::SIGKILL)
    );
    assert_eq!(
        sleeper.0.wait().expect("wait sleep").signal(),
        Some(libc::SIGKILL)
    );
    assert_eq!(leftovers_of(&id), Vec::<String>::new());
    assert!(!state.state_file().exists());
    assert!(state
        .pods
        .iter()
        .all(|p| !p.netns_path().exists() && !p.cgroup_path.exists()));
    assert!(matches!(load_lab(&name), Err(LabError::NotFound { .. })));
    assert!(
        !down(&name).expect("second down"),
        "down of a lab that is gone is a no-op"
    );
    let _ = std::fs::remove_dir_all(&docroot);
}

#[test]
fn up_refuses_an_existing_name() {
    let _host = shared();
    let name = unique_name("t-dup");
    let lab = LabGuard::up_named(&spec_pair(), &name).expect("up");
    let err = Lab::up_with(
        &spec_pair(),
        &UpOptions {
            name: Some(name.clone()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, LabError::AlreadyExists { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("a lab named {name:?} already exists")),
        "{err}"
    );
    assert_eq!(
        load_lab(&name).expect("still there").id,
        lab.id,
        "the existing lab is untouched"
    );
}

#[test]
fn down_cleans_up_after_a_crashed_up() {
    let _host = shared();
    let name = unique_name("t-crash");
    // Simulate an `up` whose process died after creating everything but before publishing the state: bring a lab
    // up, then remove its state file and hand its subnet reservation to a pid that no longer exists.
    let state = Lab::up_with(
        &spec_pair(),
        &UpOptions {
            name: Some(name.clone()),
            ..Default::default()
        },
    )
    .expect("up");
    let guard = LabGuard::new(state.clone()); // safety net if the assertions below fail
    let mut dead = Command::new("true").spawn().expect("spawn true");
    let dead_pid = dead.id();
    dead.wait().expect("wait");
    std::fs::remove_file(state.state_file()).expect("remove state file");
    let reservation = Path::new(fathom_lab::SUBNET_DIR).join(state.subnet_index.to_string());
    let body = serde_json::json!({"index": state.subnet_index, "id": state.id, "name": name, "pid": dead_pid});
    std::fs::write(&reservation, body.to_string()).expect("rewrite reservation");
    assert!(!leftovers_of(&state.id).is_empty());

    assert!(down(&name).expect("down finds the remains by name"));
    assert_eq!(leftovers_of(&state.id), Vec::<String>::new());
    assert!(!reservation.exists());
    drop(guard);
}

#[test]
fn failed_up_rolls_back_everything() {
    let _host = shared();
    for fail_at in [
        FailPoint::AfterCgroup,
        FailPoint::AfterBridge,
        FailPoint::AfterPods(1),
        FailPoint::AfterPods(3),
        FailPoint::BeforeState,
    ] {
        let name = unique_name("t-rollback");
        let opts = UpOptions {
            name: Some(name.clone()),
            fail_at: Some(fail_at),
        };
        let err = Lab::up_with(&spec_2x2(), &opts).expect_err("injected failure");
        let LabError::Up {
            id,
            rollback,
            source,
            ..
        } = &err
        else {
            panic!("{fail_at:?}: expected LabError::Up, got {err:?}")
        };
        assert!(
            matches!(**source, LabError::Injected(_)),
            "{fail_at:?}: {source:?}"
        );
        assert!(
            rollback.is_empty(),
            "{fail_at:?}: rollback errors {rollback:?}"
        );
        assert!(err.to_string().contains("rolled back"), "{err}");
        assert_eq!(
            leftovers_of(id),
            Vec::<String>::new(),
            "{fail_at:?} left objects behind"
        );
        assert!(
            matches!(load_lab(&name), Err(LabError::NotFound { .. })),
            "{fail_at:?}: state file left"
        );
    }
    // A spec that fails validation creates nothing at all (no id is ever assigned).
    let too_many = LabSpec {
        namespaces: vec![fathom_lab::NamespaceSpec {
            name: "x".into(),
            pods: (0..201)
                .map(|i| fathom_lab::PodSpec {
                    name: format!("p{i}"),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let err = Lab::up(&too_many).expect_err("too many pods");
    assert!(err.to_string().contains("a lab holds at most 200"), "{err}");
}

#[test]
fn guard_cleans_up_after_a_panic() {
    let _host = shared();
    let id = Mutex::new(None::<String>);
    let child = Mutex::new(None::<Child>);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = LabGuard::up_named(&spec_pair(), &unique_name("t-guard")).expect("up");
        *id.lock().expect("lock") = Some(lab.id.clone());
        // A process inside the pod must not survive the guard either.
        let sleeper = pod(&lab, "n/s")
            .command("sleep")
            .arg("30")
            .spawn()
            .expect("spawn");
        *child.lock().expect("lock") = Some(sleeper);
        panic!("test failure inside the guard scope");
    }));
    assert!(result.is_err(), "the closure panicked");
    let id = id.into_inner().expect("lock").expect("lab came up");
    assert_eq!(leftovers_of(&id), Vec::<String>::new());
    let mut sleeper = child.into_inner().expect("lock").expect("spawned");
    assert_eq!(
        sleeper.wait().expect("wait").signal(),
        Some(libc::SIGKILL),
        "pod process was killed"
    );
}

/// Accept one connection on `listener` and answer with `reply`, on a background thread.
fn serve_once(listener: TcpListener, reply: String) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.write_all(reply.as_bytes());
        }
    })
}

fn fetch(from: &LabPod, to: SocketAddr) -> String {
    from.in_netns(|| {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect("connect");
        let mut buf = String::new();
        s.read_to_string(&mut buf).expect("read");
        buf
    })
    .expect("in_netns")
}

#[test]
fn concurrent_labs_get_distinct_subnets_and_both_work() {
    let _host = shared();
    let labs: Vec<LabGuard> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|i| {
                s.spawn(move || {
                    LabGuard::up_named(&spec_pair(), &unique_name(&format!("t-conc{i}")))
                        .expect("up")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let (l1, l2) = (&labs[0], &labs[1]);
    assert_ne!(l1.subnet_index, l2.subnet_index);
    assert_ne!(l1.ipv4_subnet, l2.ipv4_subnet);
    assert_ne!(l1.ipv6_subnet, l2.ipv6_subnet);
    assert_ne!(l1.bridge, l2.bridge);

    for lab in &labs {
        let (server, client) = (pod(lab, "n/s"), pod(lab, "n/c"));
        for ipv6 in [false, true] {
            let listener = server
                .in_netns(|| TcpListener::bind(server.addr(ipv6, 0)))
                .expect("in_netns")
                .expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            let reply = format!("lab {} ipv6={ipv6}", lab.id);
            let t = serve_once(listener, reply.clone());
            assert_eq!(fetch(client, addr), reply);
            t.join().expect("server thread");
        }
    }
    // Labs are isolated from each other: no route from one lab's subnet to the other's.
    let r = pod(l1, "n/c")
        .in_netns(|| {
            TcpStream::connect_timeout(&pod(l2, "n/s").addr(false, 80), Duration::from_secs(1))
                .map(drop)
        })
        .expect("in_netns");
    assert_eq!(
        r.err().and_then(|e| e.raw_os_error()),
        Some(libc::ENETUNREACH)
    );

    let ids: Vec<String> = labs.iter().map(|l| l.id.clone()).collect();
    for lab in labs {
        lab.down().expect("down");
    }
    for id in ids {
        assert_eq!(leftovers_of(&id), Vec::<String>::new());
    }
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fathom-lab"))
}

#[test]
fn cli_exec_replaces_the_process_and_passes_the_exit_code() {
    let _host = shared();
    let lab = LabGuard::up_named(&spec_pair(), &unique_name("t-cli")).expect("up");
    let s = pod(&lab, "n/s");
    let child = Command::new(bin())
        .args([
            "exec",
            "n/s",
            "--lab",
            &lab.name,
            "--",
            "sh",
            "-c",
            "echo $$; readlink /proc/self/ns/net; exit 7",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fathom-lab exec");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(7),
        "exit code passes through; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some(pid.to_string().as_str()),
        "the spawned pid is the command's pid"
    );
    let ns_inode = std::fs::metadata(s.netns_path()).expect("stat netns").ino();
    assert_eq!(lines.next(), Some(format!("net:[{ns_inode}]").as_str()));

    // Unknown pod: clear error listing the pods.
    let out = Command::new(bin())
        .args(["exec", "n/zz", "--lab", &lab.name, "--", "true"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"no pod "n/zz""#) && err.contains("n/s, n/c"),
        "{err}"
    );

    // ls -o json lists the pods with the fields the agent and scripts use.
    let out = Command::new(bin())
        .args(["ls", "-o", "json"])
        .output()
        .expect("run ls");
    assert!(out.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let row = rows
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["lab"] == lab.name.as_str() && r["namespace"] == "n" && r["name"] == "s")
        .expect("our pod in ls");
    assert_eq!(row["ipv4"].as_str(), Some(s.ipv4.to_string().as_str()));
    assert_eq!(row["ipv6"].as_str(), Some(s.ipv6.to_string().as_str()));
    assert_eq!(row["host_veth"].as_str(), Some(s.host_veth.as_str()));
    assert_eq!(
        row["host_ifindex"].as_u64(),
        Some(u64::from(s.host_ifindex))
    );
    assert_eq!(row["cgroup_id"].as_u64(), Some(s.cgroup_id));
    assert!(row["labels"].is_object());

    let out = Command::new(bin()).args(["ls"]).output().expect("run ls");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("LAB  "), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&lab.name) && l.contains(&s.host_veth)),
        "{table}"
    );
}

#[test]
fn cli_up_exec_down_and_lab_selection() {
    // Exclusive: it checks what `exec` says when several labs exist, and ends with a host-wide leftovers check.
    let _host = exclusive();
    let spec_file =
        std::env::temp_dir().join(format!("fathom-lab-test-{}.yaml", std::process::id()));
    std::fs::write(
        &spec_file,
        "namespaces: [{name: n, pods: [{name: s}, {name: c}]}]\n",
    )
    .expect("write spec");
    let names = [unique_name("t-cli-a"), unique_name("t-cli-b")];
    let mut guards = Vec::new();
    for name in &names {
        let out = Command::new(bin())
            .args(["up", "-f"])
            .arg(&spec_file)
            .args(["--name", name])
            .output()
            .expect("up");
        assert!(
            out.status.success(),
            "up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with(&format!("lab {name} is up")), "{stdout}");
        let state = load_lab(name).expect("state written");
        assert!(stdout.contains(&state.pods[0].ipv4.to_string()), "{stdout}");
        guards.push(LabGuard::new(state));
    }
    let our_ids: Vec<String> = guards.iter().map(|g| g.id.clone()).collect();
    // Up again with the same name: refused, with the reason.
    let out = Command::new(bin())
        .args(["up", "-f"])
        .arg(&spec_file)
        .args(["--name", &names[0]])
        .output()
        .expect("up");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    // Several labs and no --lab: refused, naming them.
    let out = Command::new(bin())
        .args(["exec", "n/s", "--", "true"])
        .output()
        .expect("exec");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("choose one with --lab NAME")
            && names.iter().all(|n| err.contains(n.as_str())),
        "{err}"
    );

    // down by name via the CLI; unknown names are an error; the guard's own down is then a no-op.
    for name in &names {
        let out = Command::new(bin())
            .args(["down", name])
            .output()
            .expect("down");
        assert!(
            out.status.success(),
            "down: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(guards);
    let out = Command::new(bin())
        .args(["down", &names[0]])
        .output()
        .expect("down");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lab named"));
    let _ = std::fs::remove_file(&spec_file);

    // leftovers(): nothing of ours is left, and when no other lab exists (no reservation or state file: labs of
    // other processes, e.g. another crate's tests, may legitimately be up) nothing lab-shaped is left at all.
    let after = leftover_items();
    let ours: Vec<_> = after
        .iter()
        .filter(|l| l.lab_id.as_ref().is_some_and(|id| our_ids.contains(id)))
        .collect();
    assert!(ours.is_empty(), "left behind: {ours:?}");
    let others_exist = after
        .iter()
        .any(|l| matches!(l.kind, "subnet reservation" | "state file"));
    if !others_exist {
        assert_eq!(leftovers(), Vec::<String>::new());
    }
    let after = leftovers();
    let out = Command::new(bin())
        .arg("leftovers")
        .output()
        .expect("leftovers");
    assert_eq!(out.status.code(), Some(i32::from(!after.is_empty())));
}
