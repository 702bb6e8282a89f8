//! End to end in the lab, with real software on both sides: pods x/a and y/b on a bridge, a
//! real `fathom agent` attached to the lab, real nginx/curl/python peers, and the records read
//! back through `fathom observe` exactly as a user would. Needs root.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::*;

fn flags(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// curl in x/a fetches a file from nginx in y/b: one flow, both pods named, the client
/// process is curl with its real pid, the server is nginx, and the payload byte counts are
/// exactly what nginx logged and curl reported.
fn curl_to_nginx(ipv6: bool) {
    let _s = serial();
    let lab = lab(if ipv6 { "e2e6" } else { "e2e4" });
    let agent = Agent::start(&lab);
    let a = lab.pod("x/a").expect("pod x/a").clone();
    let b = lab.pod("y/b").expect("pod y/b").clone();
    let dir = tempfile::tempdir().unwrap();
    let _nginx = nginx(&b, dir.path(), 12_345);

    let url = if ipv6 {
        format!("http://[{}]/file", b.ipv6)
    } else {
        format!("http://{}/file", b.ipv4)
    };
    let curl = a
        .command("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{size_request} %{size_header} %{size_download} %{http_code}",
            &url,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl");
    let curl_pid = curl.id() as u64;
    let out = curl.wait_with_output().unwrap();
    let sizes: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    assert_eq!(
        sizes.len(),
        4,
        "curl -w output: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (req_size, resp_size, status) = (sizes[0], sizes[1] + sizes[2], sizes[3]);
    assert_eq!(status, 200);
    assert_eq!(sizes[2], 12_345);

    // nginx writes its log line after the last byte is sent, so curl may exit first (seen
    // on a loaded machine): wait for the line instead of racing it.
    let read_log = || -> Vec<u64> {
        std::fs::read_to_string(dir.path().join("access.log"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut logged = read_log();
    while logged.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        logged = read_log();
    }
    assert_eq!(logged.len(), 3, "nginx access log: {logged:?}");
    let (nginx_req, nginx_sent) = (logged[0], logged[1]);
    assert_eq!(
        nginx_req, req_size,
        "nginx and curl agree on the request size"
    );
    assert_eq!(
        nginx_sent, resp_size,
        "nginx and curl agree on the response size"
    );

    let args = [
        "--type",
        "flow",
        "--from-pod",
        "x/a",
        "--to-pod",
        "y/b",
        "--protocol",
        "tcp",
        "--port",
        "80",
        "--event",
        "end",
    ];
    let recs = agent.wait_for(&args, "the curl→nginx flow end", |r| !r.is_empty());
    assert_eq!(
        recs.len(),
        1,
        "exactly one flow for one connection: {recs:#?}"
    );
    let f = &recs[0];
    assert_eq!(str_of(f, &["type"]), "flow");
    assert_eq!(str_of(f, &["source", "pod"]), "a");
    assert_eq!(str_of(f, &["source", "namespace"]), "x");
    assert_eq!(str_of(f, &["source", "labels", "app"]), "client");
    assert_eq!(str_of(f, &["destination", "pod"]), "b");
    assert_eq!(str_of(f, &["destination", "namespace"]), "y");
    assert_eq!(u64_of(f, &["destination", "port"]), 80);
    let (src_ip, dst_ip) = if ipv6 {
        (a.ipv6.to_string(), b.ipv6.to_string())
    } else {
        (a.ipv4.to_string(), b.ipv4.to_string())
    };
    assert_eq!(str_of(f, &["source", "ip"]), src_ip);
    assert_eq!(str_of(f, &["destination", "ip"]), dst_ip);

    assert_eq!(str_of(f, &["process", "comm"]), "curl");
    assert_eq!(
        u64_of(f, &["process", "pid"]),
        curl_pid,
        "the real pid of the curl we ran"
    );
    assert_eq!(
        u64_of(f, &["process", "cgroup_id"]),
        a.cgroup_id,
        "curl ran in pod x/a's cgroup"
    );
    assert_eq!(str_of(f, &["process", "exe"]), "/usr/bin/curl");
    assert_eq!(str_of(f, &["destination_process", "comm"]), "nginx");
    assert_eq!(
        u64_of(f, &["destination_process", "cgroup_id"]),
        b.cgroup_id
    );

    assert_eq!(u64_of(f, &["traffic", "payload_bytes_out"]), nginx_req);
    assert_eq!(u64_of(f, &["traffic", "payload_bytes_in"]), nginx_sent);
    assert!(
        u64_of(f, &["traffic", "packets_out"]) >= 4 && u64_of(f, &["traffic", "packets_in"]) >= 3,
        "{f:#}"
    );
    let hdr = if ipv6 { 40 + 20 } else { 20 + 20 };
    // Every packet carries at least the IP and TCP headers on top of its payload.
    assert!(
        u64_of(f, &["traffic", "bytes_out"])
            >= nginx_req + hdr * u64_of(f, &["traffic", "packets_out"])
    );
    assert_eq!(str_of(f, &["end_reason"]), "fin");
    let out_flags = flags(&f["l4"]["tcp_flags_out"]);
    for want in ["SYN", "ACK", "FIN"] {
        assert!(
            out_flags.iter().any(|x| x == want),
            "client flags {out_flags:?} lack {want}"
        );
    }
    assert_eq!(str_of(f, &["l4", "protocol"]), "tcp");
    assert!(
        f["tcp"]["handshake_us"].as_u64().is_some(),
        "handshake measured: {f:#}"
    );
    assert!(
        f["tcp"]["srtt_us"].as_u64().is_some(),
        "srtt from the socket at close: {f:#}"
    );
    assert_eq!(u64_of(f, &["tcp", "retransmits"]), 0);
    // The client socket counted the response payload, plus one for the server's FIN.
    let received = u64_of(f, &["tcp", "bytes_received"]);
    assert!(
        received == nginx_sent || received == nginx_sent + 1,
        "bytes_received {received} vs {nginx_sent}"
    );

    // The start record of the same flow carries the same id.
    let starts = agent.observe(&[
        "--type",
        "flow",
        "--from-pod",
        "x/a",
        "--protocol",
        "tcp",
        "--event",
        "start",
    ]);
    assert_eq!(starts.len(), 1, "{starts:#?}");
    assert_eq!(starts[0]["flow_id"], f["flow_id"]);
}

#[test]
fn tcp_curl_to_nginx_ipv4() {
    curl_to_nginx(false);
}

#[test]
fn tcp_curl_to_nginx_ipv6() {
    curl_to_nginx(true);
}

#[test]
fn udp_exchange_attributes_both_processes() {
    let _s = serial();
    let lab = lab("e2eudp");
    let agent = Agent::start(&lab);
    let a = lab.pod("x/a").unwrap().clone();
    let b = lab.pod("y/b").unwrap().clone();
    let server = b
        .command("python3")
        .args(["-c", "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',5353))\nd,p=s.recvfrom(2048)\ns.sendto(d*3,p)"])
        .spawn()
        .expect("udp server");
    let server_pid = server.id() as u64;
    let _server = Bg(server);
    std::thread::sleep(Duration::from_millis(500));
    let client = a
        .command("python3")
        .args(["-c", &format!("import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(5)\ns.sendto(b'x'*100,('{}',5353))\nprint(len(s.recv(2048)))", b.ipv4)])
        .stdout(Stdio::piped())
        .spawn()
        .expect("udp client");
    let client_pid = client.id() as u64;
    let out = client.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "300");

    let args = [
        "--type",
        "flow",
        "--from-pod",
        "x/a",
        "--to-pod",
        "y/b",
        "--protocol",
        "udp",
        "--event",
        "start",
    ];
    let recs = agent.wait_for(&args, "the UDP flow", |r| !r.is_empty());
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let f = &recs[0];
    assert_eq!(u64_of(f, &["destination", "port"]), 5353);
    assert_eq!(u64_of(f, &["traffic", "packets_out"]), 1);
    assert_eq!(u64_of(f, &["traffic", "packets_in"]), 1);
    assert_eq!(u64_of(f, &["traffic", "payload_bytes_out"]), 100);
    assert_eq!(u64_of(f, &["traffic", "payload_bytes_in"]), 300);
    assert_eq!(u64_of(f, &["traffic", "bytes_out"]), 20 + 8 + 100);
    assert!(
        str_of(f, &["process", "comm"]).starts_with("python3"),
        "{f:#}"
    );
    assert_eq!(u64_of(f, &["process", "pid"]), client_pid);
    assert_eq!(u64_of(f, &["destination_process", "pid"]), server_pid);
    assert!(f["tcp"]["handshake_us"].is_null());
}

#[test]
fn refused_connection_ends_with_rst() {
    let _s = serial();
    let lab = lab("e2erst");
    let agent = Agent::start(&lab);
    let a = lab.pod("x/a").unwrap().clone();
    let b = lab.pod("y/b").unwrap().clone();
    let curl = a
        .command("curl")
        .args(["-s", "-m", "5", &format!("http://{}:81/", b.ipv4)])
        .spawn()
        .expect("curl");
    let curl_pid = curl.id() as u64;
    let status = curl_wait(curl);
    assert_eq!(status, 7, "curl: couldn't connect");

    let args = [
        "--type",
        "flow",
        "--from-pod",
        "x/a",
        "--to-pod",
        "y/b",
        "--port",
        "81",
        "--event",
        "end",
    ];
    let recs = agent.wait_for(&args, "the refused flow", |r| !r.is_empty());
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let f = &recs[0];
    assert_eq!(str_of(f, &["end_reason"]), "rst");
    assert_eq!(flags(&f["l4"]["tcp_flags_out"]), ["SYN"]);
    assert_eq!(flags(&f["l4"]["tcp_flags_in"]), ["ACK", "RST"]);
    assert_eq!(u64_of(f, &["traffic", "packets_out"]), 1);
    assert_eq!(u64_of(f, &["traffic", "packets_in"]), 1);
    assert_eq!(u64_of(f, &["traffic", "payload_bytes_in"]), 0);
    assert_eq!(str_of(f, &["process", "comm"]), "curl");
    assert_eq!(u64_of(f, &["process", "pid"]), curl_pid);
    assert!(f["tcp"]["handshake_us"].is_null(), "no handshake completed");
    assert!(f["destination_process"].is_null(), "nobody listens on :81");
}

fn curl_wait(mut c: std::process::Child) -> i32 {
    c.wait().ok().and_then(|s| s.code()).unwrap_or(-1)
}

#[test]
fn status_reports_programs_maps_and_features() {
    let _s = serial();
    let lab = lab("e2estat");
    let agent = Agent::start(&lab);
    let st = agent.status();
    let progs: Vec<&str> = st["kernel"]["programs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for want in [
        "flow_ingress",
        "flow_egress",
        "sock_state_btf",
        "proc_sock_create",
        "proc_skb_egress",
        "proc_exec",
        "proc_accept4_exit",
    ] {
        assert!(
            progs.contains(&want),
            "program {want} missing from {progs:?}"
        );
    }
    // attach=lab, scoped to this lab (--lab): exactly this lab's veths, whatever other labs are
    // up on the machine.
    let ifaces = st["kernel"]["interfaces"].as_array().unwrap();
    let mut attached: Vec<&str> = ifaces.iter().filter_map(|i| i["name"].as_str()).collect();
    let mut ours: Vec<&str> = lab.pods.iter().map(|p| p.host_veth.as_str()).collect();
    attached.sort_unstable();
    ours.sort_unstable();
    assert_eq!(attached, ours);
    let flows_map = st["kernel"]["maps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "flows")
        .expect("flows map");
    assert_eq!(flows_map["max_entries"], 65536);
    assert_eq!(st["kernel"]["lost_events"]["flow"], 0);
    let features = st["features"]["features"].as_array().unwrap();
    let has = |n: &str| {
        features
            .iter()
            .find(|f| f["name"] == n)
            .map(|f| f["available"] == true)
    };
    assert_eq!(has("btf"), Some(true));
    assert_eq!(has("tracepoint"), Some(true));
    assert_eq!(has("tp_btf"), Some(true));
    assert!(
        has("kprobe").is_some() && has("fentry").is_some(),
        "probed even when missing"
    );
    assert!(
        st["kernel"]["warnings"].as_array().unwrap().is_empty(),
        "nothing degraded: {:#}",
        st["kernel"]["warnings"]
    );
    // The table view renders too.
    let out = std::process::Command::new(fathom())
        .args(["status", "--socket"])
        .arg(&agent.socket)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("PROGRAMS") && text.contains("flow_ingress") && text.contains("FEATURES"),
        "{text}"
    );
}
