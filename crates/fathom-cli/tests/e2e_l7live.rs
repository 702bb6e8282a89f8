//! Live L7 capture end to end: `fathom agent --l7` (syscall tracepoints, no sidecar), real
//! clients in pod x/a talking to real servers in pod y/b, records read back through
//! `fathom observe`. Each record must name the exact request and answer, the client process
//! (comm and pid) and both pods. Needs root.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use fathom_lab::LabGuard;
use serde_json::Value;
use support::*;

fn l7_agent(lab: &LabGuard) -> Agent {
    Agent::start_with(lab, &["--web-address", "off", "--l7"])
}

/// The one HTTP record of `method path` among `http`.
fn http_request<'a>(http: &[&'a Value], path: &str, method: &str) -> &'a Value {
    http.iter()
        .find(|r| r["http"]["path"] == path && r["http"]["method"] == method)
        .unwrap_or_else(|| panic!("no {method} {path} in {http:#?}"))
}

/// L7 records of one protocol (by the detail's key).
fn l7_of<'a>(recs: &'a [Value], proto: &str) -> Vec<&'a Value> {
    recs.iter()
        .filter(|r| r["type"] == "l7" && !r[proto].is_null())
        .collect()
}

fn run_in(pod: &fathom_lab::LabPod, prog: &str, args: &[&str]) -> (u32, String) {
    let child = pod
        .command(prog)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {prog}: {e}"));
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    if !out.stderr.is_empty() {
        eprintln!("{prog} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (pid, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn assert_pods_and_client(r: &Value, comm: &str, pid: u32) {
    assert_eq!(str_of(r, &["source", "pod"]), "a", "{r:#}");
    assert_eq!(str_of(r, &["source", "namespace"]), "x");
    assert_eq!(str_of(r, &["destination", "pod"]), "b");
    assert_eq!(str_of(r, &["destination", "namespace"]), "y");
    assert_eq!(str_of(r, &["process", "comm"]), comm, "{r:#}");
    assert_eq!(u64_of(r, &["process", "pid"]), pid as u64, "{r:#}");
}

/// tcpdump for the life of the guard; `stop()` returns the pcap path.
struct Tcpdump {
    bg: Option<Bg>,
    file: std::path::PathBuf,
}

impl Tcpdump {
    /// Captures on the host side of `pod`'s veth: everything the pod sends or receives.
    fn start(pod: &fathom_lab::LabPod, dir: &Path, filter: &str) -> Tcpdump {
        let file = dir.join("oracle.pcap");
        let child = Command::new("tcpdump")
            .args([
                "-Z",
                "root",
                "--immediate-mode",
                "-i",
                &pod.host_veth,
                "-U",
                "-s",
                "0",
                "-w",
            ])
            .arg(&file)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump");
        // The file header is written once the capture is open; give it a moment more after.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) < 24
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        Tcpdump {
            bg: Some(Bg(child)),
            file,
        }
    }

    fn stop(mut self) -> std::path::PathBuf {
        if let Some(bg) = self.bg.take() {
            // SIGINT so that tcpdump flushes its file.
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(bg.0.id() as i32, libc::SIGINT) };
            std::thread::sleep(Duration::from_millis(500));
            drop(bg);
        }
        self.file.clone()
    }
}

/// tshark's dissection of a capture: one line per matching packet, the fields tab-separated.
fn tshark(pcap: &Path, filter: &str, fields: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(pcap).args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn http1_curl_to_nginx_with_tshark_oracle() {
    let _s = serial();
    let lab = lab("l7h");
    let agent = l7_agent(&lab);
    let a = lab.pod("x/a").expect("pod x/a").clone();
    let b = lab.pod("y/b").expect("pod y/b").clone();
    let dir = tempfile::tempdir().unwrap();
    let _nginx = nginx(&b, dir.path(), 1000);
    let dump = Tcpdump::start(&b, dir.path(), "tcp port 80");

    let base = format!("http://{}", b.ipv4);
    let (pid_ok, code_ok) = run_in(
        &a,
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{base}/file"),
        ],
    );
    let (pid_404, code_404) = run_in(
        &a,
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{base}/missing?q=1"),
        ],
    );
    let (pid_post, code_post) = run_in(
        &a,
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "-d",
            "x=1",
            &format!("{base}/file"),
        ],
    );
    assert_eq!(
        (code_ok.as_str(), code_404.as_str(), code_post.as_str()),
        ("200", "404", "405")
    );
    let pcap = dump.stop();

    let recs = agent.wait_for(&["--last", "1000"], "three HTTP records", |r| {
        l7_of(r, "http").len() >= 3
    });
    let http = l7_of(&recs, "http");
    assert_eq!(
        http.len(),
        3,
        "exactly one record per request (client side only): {http:#?}"
    );
    let find = |path: &str, method: &str| http_request(&http, path, method);
    let ok = find("/file", "GET");
    assert_eq!(ok["http"]["status"], 200);
    assert_eq!(ok["http"]["response_content_length"], 1000);
    assert_pods_and_client(ok, "curl", pid_ok);
    let missing = find("/missing?q=1", "GET");
    assert_eq!(missing["http"]["status"], 404);
    assert_pods_and_client(missing, "curl", pid_404);
    let post = find("/file", "POST");
    assert_eq!(post["http"]["status"], 405);
    assert_pods_and_client(post, "curl", pid_post);
    assert_eq!(u64_of(ok, &["destination", "port"]), 80);

    // Oracle: every request tshark dissects from the wire, Fathom reported.
    let wire = tshark(
        &pcap,
        "http.request",
        &["http.request.method", "http.request.uri"],
    );
    assert_eq!(
        wire.len(),
        3,
        "tshark saw {wire:?} in {} bytes of capture: {:?}",
        std::fs::metadata(&pcap).map(|m| m.len()).unwrap_or(0),
        tshark(&pcap, "frame", &["frame.protocols"])
    );
    for line in &wire {
        let mut f = line.split('\t');
        let (m, u) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        assert!(
            http.iter()
                .any(|r| r["http"]["method"] == m && r["http"]["path"] == u),
            "tshark saw {m} {u}, Fathom did not: {http:#?}"
        );
    }

    // observe's L7 filters, on the live ring and on the history (--since reads the store).
    let paths = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = agent
            .observe(args)
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    str_of(r, &["http", "method"]),
                    str_of(r, &["http", "path"])
                )
            })
            .collect();
        v.sort();
        v
    };
    // The history is written in batches: wait until it holds the three records.
    agent.wait_for(
        &["--since", "5m", "--type", "l7"],
        "HTTP records in the history",
        |r| l7_of(r, "http").len() >= 3,
    );
    for window in [&["--last", "1000"][..], &["--since", "5m"][..]] {
        let with = |extra: &[&str]| paths(&[window, extra].concat());
        assert_eq!(
            with(&["--http-status", "4+"]),
            ["GET /missing?q=1", "POST /file"]
        );
        assert_eq!(with(&["--http-status", "200"]), ["GET /file"]);
        assert_eq!(with(&["--http-method", "post"]), ["POST /file"]);
        assert_eq!(with(&["--http-path", "^/miss"]), ["GET /missing?q=1"]);
        assert_eq!(with(&["--protocol", "http", "--type", "l7"]).len(), 3);
        assert!(with(&["--protocol", "dns"]).is_empty());
    }

    let st = agent.wait_status(|st| u64_of(st, &["l7", "kernel", "peer_local"]) >= 3);
    assert_eq!(
        u64_of(&st, &["l7", "kernel", "events_lost"]),
        0,
        "{:#}",
        st["l7"]
    );
    assert!(
        u64_of(&st, &["l7", "kernel", "peer_local"]) >= 3,
        "nginx's ends muted in the kernel (curl is local): {:#}",
        st["l7"]
    );
}

/// A background server with its temp dir: stopped, then the dir removed, on drop.
struct Server {
    _bg: Bg,
    _dir: tempfile::TempDir,
}

fn wait_file(p: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !p.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
}

fn dnsmasq(b: &fathom_lab::LabPod) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("dnsmasq.pid");
    let child = b
        .command("dnsmasq")
        .args([
            "-k",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--port=53",
            "--bind-interfaces",
            "--user=root",
            "--address=/web.lab/10.1.2.3",
            "--address=/web.lab/fd00::3",
            "--local=/lab/",
        ])
        .arg(format!("--listen-address={}", b.ipv4))
        .arg(format!("--pid-file={}", pid.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq (apt-get install dnsmasq-base)");
    wait_file(&pid);
    Server {
        _bg: Bg(child),
        _dir: dir,
    }
}

#[test]
fn dns_dig_to_dnsmasq_a_aaaa_nxdomain() {
    let _s = serial();
    let lab = lab("l7d");
    let agent = l7_agent(&lab);
    let a = lab.pod("x/a").expect("pod x/a").clone();
    let b = lab.pod("y/b").expect("pod y/b").clone();
    let _dns = dnsmasq(&b);
    let dir = tempfile::tempdir().unwrap();
    let dump = Tcpdump::start(&b, dir.path(), "udp port 53");
    let server = format!("@{}", b.ipv4);
    let (pid_a, ans_a) = run_in(&a, "dig", &["+short", "+tries=1", &server, "web.lab", "A"]);
    let (pid_aaaa, ans_aaaa) = run_in(
        &a,
        "dig",
        &["+short", "+tries=1", &server, "web.lab", "AAAA"],
    );
    let (pid_nx, _) = run_in(&a, "dig", &["+tries=1", &server, "nope.lab", "A"]);
    assert_eq!(ans_a.trim(), "10.1.2.3");
    assert_eq!(ans_aaaa.trim(), "fd00::3");
    let pcap = dump.stop();

    let recs = agent.wait_for(&["--last", "1000"], "three DNS records", |r| {
        l7_of(r, "dns").len() >= 3
    });
    let dns = l7_of(&recs, "dns");
    assert_eq!(dns.len(), 3, "{dns:#?}");
    let find = |name: &str, qtype: &str| {
        *dns.iter()
            .find(|r| {
                r["dns"]["qname"].as_str().map(|q| q.trim_end_matches('.')) == Some(name)
                    && r["dns"]["qtype"] == qtype
            })
            .unwrap_or_else(|| panic!("no {qtype} {name} in {dns:#?}"))
    };
    let ra = find("web.lab", "A");
    assert_eq!(ra["dns"]["rcode"], "NOERROR");
    assert_eq!(ra["dns"]["answers"][0]["data"], "10.1.2.3");
    assert_pods_and_client(ra, "dig", pid_a);
    let raaaa = find("web.lab", "AAAA");
    assert_eq!(raaaa["dns"]["rcode"], "NOERROR");
    assert_eq!(raaaa["dns"]["answers"][0]["data"], "fd00::3");
    assert_pods_and_client(raaaa, "dig", pid_aaaa);
    let rnx = find("nope.lab", "A");
    assert_eq!(rnx["dns"]["rcode"], "NXDOMAIN");
    assert_pods_and_client(rnx, "dig", pid_nx);
    assert_eq!(u64_of(ra, &["destination", "port"]), 53);

    let names = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = agent
            .observe(&[&["--last", "1000"], args].concat())
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    str_of(r, &["dns", "qname"]),
                    str_of(r, &["dns", "qtype"])
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&["--dns-query", "web.lab"]),
        ["web.lab A", "web.lab AAAA"]
    );
    assert_eq!(
        names(&["--dns-query", "*.lab", "--protocol", "dns"]).len(),
        3
    );
    assert!(names(&["--dns-query", "other.lab"]).is_empty());

    let wire = tshark(
        &pcap,
        "dns.flags.response == 0",
        &["dns.qry.name", "dns.qry.type"],
    );
    assert_eq!(wire.len(), 3, "tshark saw {wire:?}");
    for line in &wire {
        let name = line.split('\t').next().unwrap_or("");
        assert!(
            dns.iter()
                .any(|r| r["dns"]["qname"].as_str().map(|q| q.trim_end_matches('.')) == Some(name)),
            "tshark saw a query for {name}, Fathom did not: {dns:#?}"
        );
    }
}

fn redis_server(b: &fathom_lab::LabPod) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let child = b
        .command("redis-server")
        .args([
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ])
        .arg("--bind")
        .arg(b.ipv4.to_string())
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (apt-get install redis-server)");
    let bg = listening(b, child, 6379, Duration::from_secs(10), "redis");
    Server { _bg: bg, _dir: dir }
}

#[test]
fn redis_cli_to_redis_server() {
    let _s = serial();
    let lab = lab("l7r");
    let agent = l7_agent(&lab);
    let a = lab.pod("x/a").expect("pod x/a").clone();
    let b = lab.pod("y/b").expect("pod y/b").clone();
    let _redis = redis_server(&b);
    let host = b.ipv4.to_string();
    let (pid_set, set) = run_in(
        &a,
        "redis-cli",
        &["-h", &host, "SET", "fathom:key", "hello"],
    );
    let (pid_get, get) = run_in(&a, "redis-cli", &["-h", &host, "GET", "fathom:key"]);
    let (pid_bad, _) = run_in(&a, "redis-cli", &["-h", &host, "INCR", "fathom:key"]);
    assert_eq!((set.trim(), get.trim()), ("OK", "hello"));

    let recs = agent.wait_for(&["--last", "1000"], "three Redis records", |r| {
        l7_of(r, "redis").len() >= 3
    });
    let redis = l7_of(&recs, "redis");
    let find = |cmd: &str| {
        *redis
            .iter()
            .find(|r| r["redis"]["command"] == cmd)
            .unwrap_or_else(|| panic!("no {cmd} in {redis:#?}"))
    };
    let s = find("SET");
    assert_eq!(s["redis"]["key"], "fathom:key");
    assert_pods_and_client(s, "redis-cli", pid_set);
    let g = find("GET");
    assert_eq!(g["redis"]["key"], "fathom:key");
    assert_pods_and_client(g, "redis-cli", pid_get);
    let i = find("INCR");
    assert!(
        i["redis"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("not an integer")),
        "{i:#}"
    );
    assert_pods_and_client(i, "redis-cli", pid_bad);
    assert_eq!(u64_of(s, &["destination", "port"]), 6379);
}

/// nginx serving HTTP/2 without TLS (prior knowledge only) on port 8080 in `pod`.
fn nginx_h2c(pod: &fathom_lab::LabPod) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let bg = nginx_with(
        pod,
        dir.path(),
        777,
        8080,
        "access_log off;",
        "listen 8080 http2;",
    );
    Server { _bg: bg, _dir: dir }
}

#[test]
fn h2c_curl_prior_knowledge_to_nginx() {
    let _s = serial();
    let lab = lab("l7h2");
    let agent = l7_agent(&lab);
    let a = lab.pod("x/a").expect("pod x/a").clone();
    let b = lab.pod("y/b").expect("pod y/b").clone();
    let _nginx = nginx_h2c(&b);
    let base = format!("http://{}:8080", b.ipv4);
    let h2 = |url: String| {
        run_in(
            &a,
            "curl",
            &[
                "-s",
                "--http2-prior-knowledge",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url,
            ],
        )
    };
    let (pid, ok_code) = h2(format!("{base}/file"));
    let (pid_nf, nf_code) = h2(format!("{base}/nothing"));
    assert_eq!((ok_code.as_str(), nf_code.as_str()), ("200", "404"));

    let recs = agent.wait_for(&["--last", "1000"], "two HTTP/2 records", |r| {
        l7_of(r, "http2").len() >= 2
    });
    let h2 = l7_of(&recs, "http2");
    assert_eq!(h2.len(), 2, "{h2:#?}");
    let find = |path: &str| {
        *h2.iter()
            .find(|r| r["http2"]["path"] == path)
            .unwrap_or_else(|| panic!("no {path} in {h2:#?}"))
    };
    let ok = find("/file");
    assert_eq!(ok["http2"]["method"], "GET");
    assert_eq!(ok["http2"]["status"], 200);
    assert_eq!(ok["http2"]["stream_id"], 1);
    assert_pods_and_client(ok, "curl", pid);
    let nf = find("/nothing");
    assert_eq!(nf["http2"]["status"], 404);
    assert_eq!(nf["http2"]["stream_id"], 1);
    assert_pods_and_client(nf, "curl", pid_nf);
    let only = agent.observe(&[
        "--last",
        "1000",
        "--protocol",
        "http2",
        "--http-status",
        "404",
    ]);
    assert_eq!(only.len(), 1);
}

/// PostgreSQL in `pod`: a throwaway cluster (trust auth) in a temp dir owned by `postgres`.
fn postgres(pod: &fathom_lab::LabPod) -> Option<Server> {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .find(|p| p.join("postgres").exists())?;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ok = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "chown the cluster dir to postgres");
    let init = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join("initdb"))
        .args(["-A", "trust", "-U", "postgres", "-D"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("initdb");
    assert!(init.success(), "initdb failed");
    // The lab's clients connect over the pod network.
    let hba = data.join("pg_hba.conf");
    let mut conf = std::fs::read_to_string(&hba).expect("pg_hba.conf");
    conf.push_str("\nhost all all 0.0.0.0/0 trust\n");
    std::fs::write(&hba, conf).expect("pg_hba.conf");
    let child = pod
        .command("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .arg("-k")
        .arg(dir.path())
        .args(["-p", "5432", "-c", "fsync=off"])
        .arg("-h")
        .arg(pod.ipv4.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("postgres");
    let bg = listening(pod, child, 5432, Duration::from_secs(20), "postgres");
    Some(Server { _bg: bg, _dir: dir })
}

#[test]
fn psql_to_postgresql() {
    let _s = serial();
    let lab = lab("l7p");
    let agent = l7_agent(&lab);
    let a = lab.pod("x/a").expect("pod x/a").clone();
    let b = lab.pod("y/b").expect("pod y/b").clone();
    let _pg = postgres(&b).expect("postgresql installed (apt-get install postgresql)");
    let host = b.ipv4.to_string();
    let (pid, out) = run_in(
        &a,
        "psql",
        &[
            "-h",
            &host,
            "-U",
            "postgres",
            "-At",
            "-c",
            "SELECT 40 + 2",
            "-c",
            "SELECT nope FROM missing_table",
        ],
    );
    assert_eq!(out.trim(), "42");

    let recs = agent.wait_for(&["--last", "1000"], "PostgreSQL statements", |r| {
        l7_of(r, "postgres")
            .iter()
            .filter(|r| !r["postgres"]["statement"].is_null())
            .count()
            >= 2
    });
    let pg = l7_of(&recs, "postgres");
    let find = |stmt: &str| {
        *pg.iter()
            .find(|r| r["postgres"]["statement"] == stmt)
            .unwrap_or_else(|| panic!("no {stmt:?} in {pg:#?}"))
    };
    let ok = find("SELECT 40 + 2");
    assert_eq!(ok["postgres"]["command_tags"][0], "SELECT 1");
    assert_pods_and_client(ok, "psql", pid);
    let bad = find("SELECT nope FROM missing_table");
    assert_eq!(bad["postgres"]["error_code"], "42P01", "{bad:#}");
    assert_pods_and_client(bad, "psql", pid);
    assert_eq!(u64_of(ok, &["destination", "port"]), 5432);
}

/// MariaDB in `pod`: a throwaway datadir, no grant checks (the lab is its own network).
fn mariadb(pod: &fathom_lab::LabPod) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let init = Command::new("mariadb-install-db")
        .args([
            "--no-defaults",
            "--user=root",
            "--auth-root-authentication-method=normal",
        ])
        .arg(format!("--datadir={}", data.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("mariadb-install-db (apt-get install mariadb-server)");
    assert!(init.success(), "mariadb-install-db failed");
    let child = pod
        .command("mariadbd")
        .args([
            "--no-defaults",
            "--user=root",
            "--skip-grant-tables",
            "--port=3306",
        ])
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", dir.path().join("sock").display()))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .arg(format!("--bind-address={}", pod.ipv4))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mariadbd");
    let bg = listening(pod, child, 3306, Duration::from_secs(30), "mariadbd");
    Server { _bg: bg, _dir: dir }
}

#[test]
fn mysql_client_to_mariadb() {
    let _s = serial();
    let lab = lab("l7m");
    let agent = l7_agent(&lab);
    let a = lab.pod("x/a").expect("pod x/a").clone();
    let b = lab.pod("y/b").expect("pod y/b").clone();
    let _db = mariadb(&b);
    let host = b.ipv4.to_string();
    let mysql = |sql: &str| {
        run_in(
            &a,
            "mysql",
            &["--no-defaults", "-h", &host, "-u", "root", "-N", "-e", sql],
        )
    };
    let (pid_ok, out) = mysql("SELECT 40 + 2");
    assert_eq!(out.trim(), "42");
    let (pid_bad, _) = mysql("SELECT nope FROM mysql.missing_table");

    let recs = agent.wait_for(&["--last", "1000"], "MySQL statements", |r| {
        l7_of(r, "mysql")
            .iter()
            .filter(|r| r["mysql"]["command"] == "COM_QUERY")
            .count()
            >= 2
    });
    let my = l7_of(&recs, "mysql");
    let find = |stmt: &str| {
        *my.iter()
            .find(|r| r["mysql"]["statement"] == stmt)
            .unwrap_or_else(|| panic!("no {stmt:?} in {my:#?}"))
    };
    let ok = find("SELECT 40 + 2");
    assert_eq!(ok["mysql"]["rows"], 1, "{ok:#}");
    assert_pods_and_client(ok, "mysql", pid_ok);
    let bad = find("SELECT nope FROM mysql.missing_table");
    assert_eq!(bad["mysql"]["error_code"], 1146, "{bad:#}");
    assert_pods_and_client(bad, "mysql", pid_bad);
    assert_eq!(u64_of(ok, &["destination", "port"]), 3306);
}

const GRPC_SERVER: &str = r#"
import grpc, sys
from concurrent import futures
def say(req, ctx):
    if req == b"fail":
        ctx.abort(grpc.StatusCode.NOT_FOUND, "no such greeting")
    return b"hello " + req
handler = grpc.method_handlers_generic_handler(
    "fathom.Greeter", {"Say": grpc.unary_unary_rpc_method_handler(say)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers((handler,))
server.add_insecure_port(sys.argv[1])
server.start()
server.wait_for_termination()
"#;

const GRPC_CLIENT: &str = r#"
import grpc, sys
channel = grpc.insecure_channel(sys.argv[1])
say = channel.unary_unary("/fathom.Greeter/Say")
print(say(b"world", timeout=10).decode())
try:
    say(b"fail", timeout=10)
except grpc.RpcError as e:
    print(e.code().name)
"#;

/// Debian's python3-grpcio lives in the system interpreter's dist-packages.
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

#[test]
fn grpc_python_client_to_server() {
    let _s = serial();
    let lab = lab("l7g");
    let agent = l7_agent(&lab);
    let a = lab.pod("x/a").expect("pod x/a").clone();
    let b = lab.pod("y/b").expect("pod y/b").clone();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.py"), GRPC_SERVER).unwrap();
    std::fs::write(dir.path().join("client.py"), GRPC_CLIENT).unwrap();
    let target = format!("{}:50051", b.ipv4);
    let server = b
        .command(SYSTEM_PYTHON)
        .arg(dir.path().join("server.py"))
        .arg(&target)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 grpc server (apt-get install python3-grpcio)");
    let _server = listening(&b, server, 50051, Duration::from_secs(20), "grpc server");
    let client = dir.path().join("client.py");
    let (pid, out) = run_in(
        &a,
        SYSTEM_PYTHON,
        &[client.to_str().unwrap_or_default(), &target],
    );
    assert_eq!(out.trim(), "hello world\nNOT_FOUND");

    let recs = agent.wait_for(&["--last", "1000"], "two gRPC calls", |r| {
        l7_of(r, "grpc").len() >= 2
    });
    let calls = l7_of(&recs, "grpc");
    assert_eq!(calls.len(), 2, "{calls:#?}");
    for c in &calls {
        assert_eq!(c["grpc"]["service"], "fathom.Greeter", "{c:#}");
        assert_eq!(c["grpc"]["method"], "Say");
        assert_pods_and_client(c, "python3", pid);
    }
    let mut statuses: Vec<u64> = calls
        .iter()
        .map(|c| c["grpc"]["grpc_status"].as_u64().unwrap_or(99))
        .collect();
    statuses.sort();
    assert_eq!(statuses, [0, 5], "OK and NOT_FOUND");
    let only = agent.observe(&[
        "--last",
        "1000",
        "--protocol",
        "grpc",
        "--http-path",
        "^/fathom.Greeter/Say$",
    ]);
    assert_eq!(only.len(), 2);
}

/// L7 records of one protocol to port 443: other processes on the host (other tests) speak
/// HTTP too.
fn https<'a>(recs: &'a [Value], proto: &str) -> Vec<&'a Value> {
    l7_of(recs, proto)
        .into_iter()
        .filter(|r| u64_of(r, &["destination", "port"]) == 443)
        .collect()
}

/// nginx serving HTTPS on 443 in `pod` with a self-signed certificate made here; `listen`:
/// the listen options (`ssl`, or `ssl http2` for HTTP/2 by ALPN).
fn nginx_tls(pod: &fathom_lab::LabPod, listen: &str, body_len: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let cert = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=test",
        ])
        .args(["-days", "1", "-keyout"])
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(dir.path().join("cert.pem"))
        .output()
        .expect("openssl");
    assert!(
        cert.status.success(),
        "{}",
        String::from_utf8_lossy(&cert.stderr)
    );
    let server = format!(
        "listen 443 {listen}; ssl_certificate {{d}}/cert.pem; ssl_certificate_key {{d}}/key.pem;"
    );
    let bg = nginx_with(pod, dir.path(), body_len, 443, "access_log off;", &server);
    Server { _bg: bg, _dir: dir }
}

#[test]
fn https_curl_to_nginx_plaintext_through_openssl_uprobes() {
    let _s = serial();
    let lab = lab("l7tls");
    let agent = l7_agent(&lab);
    let a = lab.pod("x/a").expect("pod x/a").clone();
    let b = lab.pod("y/b").expect("pod y/b").clone();
    let _nginx = nginx_tls(&b, "ssl", 1234);
    let dir = tempfile::tempdir().unwrap();
    let keylog = dir.path().join("keys.log");
    let dump = Tcpdump::start(&b, dir.path(), "tcp port 443");

    let base = format!("https://{}", b.ipv4);
    let curl = |extra: &[&str], url: String| {
        let mut args = vec![
            "-s",
            "-k",
            "--http1.1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ];
        args.extend_from_slice(extra);
        let child = a
            .command("curl")
            .args(&args)
            .arg(&url)
            // The oracle's key: tshark decrypts the capture with curl's session secrets.
            .env("SSLKEYLOGFILE", &keylog)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("curl");
        let pid = child.id();
        let out = child.wait_with_output().expect("wait curl");
        (pid, String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (pid_ok, ok) = curl(&[], format!("{base}/file"));
    let (pid_nf, nf) = curl(&[], format!("{base}/missing?tls=1"));
    let (pid_post, post) = curl(&["-X", "POST", "-d", "a=1"], format!("{base}/file"));
    assert_eq!(
        (ok.as_str(), nf.as_str(), post.as_str()),
        ("200", "404", "405")
    );
    let pcap = dump.stop();

    let recs = agent.wait_for(&["--last", "1000"], "three HTTPS records", |r| {
        https(r, "http").len() >= 3
    });
    let http = https(&recs, "http");
    assert_eq!(
        http.len(),
        3,
        "one record per request: curl's plaintext, not nginx's too: {http:#?}"
    );
    let find = |path: &str, method: &str| http_request(&http, path, method);
    for (r, status, pid) in [
        (find("/file", "GET"), 200, pid_ok),
        (find("/missing?tls=1", "GET"), 404, pid_nf),
        (find("/file", "POST"), 405, pid_post),
    ] {
        assert_eq!(r["http"]["status"], status, "{r:#}");
        assert_eq!(r["tls_plaintext"], true, "{r:#}");
        assert_eq!(u64_of(r, &["destination", "port"]), 443);
        assert_pods_and_client(r, "curl", pid);
    }
    assert_eq!(
        find("/file", "GET")["http"]["response_content_length"],
        1234
    );

    // Oracle: tshark decrypts the capture with curl's key log; every request it sees, Fathom
    // reported.
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(&pcap)
        .arg("-o")
        .arg(format!("tls.keylog_file:{}", keylog.display()))
        .args(["-Y", "http.request", "-T", "fields"])
        .args(["-e", "http.request.method", "-e", "http.request.uri"]);
    let out = cmd.output().expect("tshark");
    let wire: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(wire.len(), 3, "tshark decrypted {wire:?}");
    for line in &wire {
        let mut f = line.split('\t');
        let (m, u) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        assert!(
            http.iter()
                .any(|r| r["http"]["method"] == m && r["http"]["path"] == u),
            "tshark saw {m} {u}, Fathom did not: {http:#?}"
        );
    }

    let st = agent.wait_status(|st| u64_of(st, &["l7", "kernel", "tls_events"]) >= 6);
    let libs = st["l7"]["tls_libraries"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(
        libs.keys().any(|p| p.contains("libssl.so")),
        "status names the libssl carrying the uprobes: {:#}",
        st["l7"]
    );
    assert!(
        u64_of(&st, &["l7", "kernel", "tls_events"]) >= 6,
        "{:#}",
        st["l7"]
    );
    assert_eq!(u64_of(&st, &["l7", "kernel", "events_lost"]), 0);
    let text = Command::new(fathom())
        .args(["status", "--socket"])
        .arg(&agent.socket)
        .output()
        .expect("fathom status");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("tls uprobes on") && l.contains("libssl.so")),
        "{text}"
    );
}

#[test]
fn h2_over_tls_curl_to_nginx_plaintext_through_openssl_uprobes() {
    let _s = serial();
    let lab = lab("l7tls2");
    let agent = l7_agent(&lab);
    let a = lab.pod("x/a").expect("pod x/a").clone();
    let b = lab.pod("y/b").expect("pod y/b").clone();
    let _nginx = nginx_tls(&b, "ssl http2", 321);
    let base = format!("https://{}", b.ipv4);
    let h2 = |url: String| {
        run_in(
            &a,
            "curl",
            &[
                "-s",
                "-k",
                "--http2",
                "-o",
                "/dev/null",
                "-w",
                "%{http_version} %{http_code}",
                &url,
            ],
        )
    };
    let (pid, ok) = h2(format!("{base}/file"));
    let (pid_nf, nf) = h2(format!("{base}/nothing"));
    assert_eq!(
        (ok.as_str(), nf.as_str()),
        ("2 200", "2 404"),
        "HTTP/2 by ALPN"
    );

    let recs = agent.wait_for(&["--last", "1000"], "two HTTP/2 records", |r| {
        https(r, "http2").len() >= 2
    });
    let h2 = https(&recs, "http2");
    assert_eq!(h2.len(), 2, "{h2:#?}");
    for (path, status, pid) in [("/file", 200, pid), ("/nothing", 404, pid_nf)] {
        let r = *h2
            .iter()
            .find(|r| r["http2"]["path"] == path)
            .unwrap_or_else(|| panic!("no {path} in {h2:#?}"));
        assert_eq!(r["http2"]["method"], "GET");
        assert_eq!(r["http2"]["status"], status);
        assert_eq!(r["tls_plaintext"], true);
        assert_eq!(u64_of(r, &["destination", "port"]), 443);
        assert_pods_and_client(r, "curl", pid);
    }
    assert!(https(&recs, "http").is_empty(), "{recs:#?}");
}
