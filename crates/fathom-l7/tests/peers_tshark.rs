//! Real peers, real traffic, and an oracle nobody here wrote: each test starts a real server
//! on 127.0.0.1 (a kernel-picked free port, a temp dir), captures the loopback traffic with
//! tcpdump while real clients make a handful of different requests (successes and errors),
//! then checks that Fathom's replay engine reports every exchange tshark dissects from the
//! same file, with the same method/path/status, qname/rcode, command/key/reply or
//! statement/error code.
//!
//! Pairs: curl↔nginx (HTTP/1.1 and h2c prior knowledge, plus nghttp for concurrent streams on
//! one connection, which curl 7.88 cannot do with prior knowledge), a Python grpcio
//! client/server (generic handlers, no protoc), dig↔dnsmasq (UDP and TCP),
//! redis-cli↔redis-server (tshark's RESP dissector, and what redis-cli was told to send),
//! psql/pgbench↔PostgreSQL (simple query, error, PREPARE/EXECUTE, extended protocol),
//! mariadb/DBD::MariaDB↔MariaDB (query, error, binary prepared statements).
//!
//! The tests need root (tcpdump on `lo`). When a program is missing they are skipped with a
//! message, unless `FATHOM_REQUIRE_PEERS=1` (set by `make test`), which makes that a failure.
//! `FATHOM_PEERS_KEEP=1` keeps the temp dirs (captures, server logs) for a look afterwards.
//!
//! Pairing of requests with responses on the tshark side relies on the clients used here
//! being synchronous (one request outstanding per connection, or HTTP/2 stream ids), which
//! is what these clients do; each comparison is also checked against what the test itself
//! sent, so that agreement can not come from both sides seeing nothing.

mod peers;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fathom_model::l7::{L7Detail, L7Record};
use peers::{
    agree, client_port, fathom, free_port, need, need_that, run, run_ok, tshark, user_ids, Capture,
    Guarded, TempDir, Tools,
};
use serde_json::Value;

const START: Duration = Duration::from_secs(30);

fn curl(t: &Tools, args: &[&str]) -> Command {
    let mut c = t.cmd("curl");
    // --noproxy: an http_proxy in the environment must not take the traffic elsewhere.
    c.args([
        "-sS",
        "--noproxy",
        "*",
        "-o",
        "/dev/null",
        "--max-time",
        "10",
    ])
    .args(args);
    c
}

/// nginx serving `root` on an HTTP/1.1 port and/or a cleartext HTTP/2 port, as root (the
/// workers too, so that the temp dir needs no ownership changes).
fn start_nginx(t: &Tools, dir: &TempDir, h1: Option<u16>, h2: Option<u16>) -> Guarded {
    let root = dir.join("html");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("index.html"), "<h1>fathom peers</h1>\n").unwrap();
    // Bigger than a loopback segment, so the response spans several TCP segments and frames.
    let big: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    fs::write(root.join("big.txt"), big).unwrap();
    let p = dir.path().display();
    let mut listen = String::new();
    if let Some(port) = h1 {
        listen += &format!("listen 127.0.0.1:{port};\n");
    }
    if let Some(port) = h2 {
        listen += &format!("listen 127.0.0.1:{port} http2;\n");
    }
    // /post is proxied (over a unix socket, so not captured) to a `return 201`: `return`
    // answers before reading a request body, and nginx then resets the HTTP/2 stream, which
    // curl sometimes reports as a framing error. Proxying makes nginx read the body first.
    let conf = format!(
        r#"user root;
worker_processes 1;
daemon off;
pid {p}/nginx.pid;
error_log {p}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {p}/body;
  proxy_temp_path {p}/proxy;
  fastcgi_temp_path {p}/fcgi;
  uwsgi_temp_path {p}/uwsgi;
  scgi_temp_path {p}/scgi;
  server {{
    {listen}
    root {root};
    location /post {{ proxy_pass http://unix:{p}/backend.sock:/; }}
    location /fail {{ return 503; }}
  }}
  server {{
    listen unix:{p}/backend.sock;
    location / {{ return 201 "created\n"; }}
  }}
}}
"#,
        root = root.display()
    );
    fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut cmd = t.cmd("nginx");
    cmd.arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"));
    let mut s = Guarded::spawn("nginx", &mut cmd, &dir.join("nginx.out"));
    for port in h1.into_iter().chain(h2) {
        s.wait_tcp(port, START);
    }
    s
}

fn first(v: &[String]) -> Option<String> {
    v.first().cloned()
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1: curl ↔ nginx

/// (client port, method, uri, status)
type HttpTx = (u16, Option<String>, Option<String>, Option<u16>);

#[test]
fn http1_curl_nginx() {
    let Some(t) = need("http1_curl_nginx", &[&["nginx"], &["curl"]]) else {
        return;
    };
    let dir = TempDir::new("http1");
    let port = free_port();
    let nginx = start_nginx(&t, &dir, Some(port), None);
    let cap = Capture::start(
        &t,
        &dir.join("http1.pcap"),
        &format!("tcp port {port}{}", nginx.not_probes()),
    );
    let u = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let sent: Vec<(&str, &str, u16)> = vec![
        ("GET", "/", 200),
        ("GET", "/missing", 404),
        ("HEAD", "/", 200),
        ("POST", "/post", 201),
        ("PUT", "/post", 201),
        ("DELETE", "/post?id=7", 201),
        ("GET", "/fail", 503),
        ("GET", "/index.html?q=1&r=two", 200),
        ("GET", "/big.txt", 200),
        // These two share one keep-alive connection.
        ("GET", "/big.txt", 200),
        ("GET", "/missing/again", 404),
    ];
    run_ok(dir.path(), &mut curl(&t, &[&u("/")]));
    run_ok(dir.path(), &mut curl(&t, &[&u("/missing")]));
    run_ok(dir.path(), &mut curl(&t, &["-I", &u("/")]));
    run_ok(dir.path(), &mut curl(&t, &["-d", "a=1&b=2", &u("/post")]));
    run_ok(
        dir.path(),
        &mut curl(&t, &["-X", "PUT", "-d", "{\"x\":1}", &u("/post")]),
    );
    run_ok(
        dir.path(),
        &mut curl(&t, &["-X", "DELETE", &u("/post?id=7")]),
    );
    run_ok(dir.path(), &mut curl(&t, &[&u("/fail")]));
    run_ok(dir.path(), &mut curl(&t, &[&u("/index.html?q=1&r=two")]));
    run_ok(dir.path(), &mut curl(&t, &[&u("/big.txt")]));
    run_ok(
        dir.path(),
        &mut curl(
            &t,
            &[&u("/big.txt"), "-o", "/dev/null", &u("/missing/again")],
        ),
    );
    let pcap = cap.stop();

    let rows = tshark(
        &t,
        &pcap,
        &[format!("tcp.port=={port},http")],
        "http",
        &[
            "tcp.srcport",
            "tcp.dstport",
            "http.request.method",
            "http.request.uri",
            "http.response.code",
        ],
    );
    // Per connection, requests and responses in order; curl waits for each response.
    let mut reqs: BTreeMap<u16, Vec<(String, String)>> = BTreeMap::new();
    let mut resps: BTreeMap<u16, Vec<u16>> = BTreeMap::new();
    for r in &rows {
        let c = client_port(port, &r[0], &r[1]);
        for (m, uri) in r[2].iter().zip(&r[3]) {
            reqs.entry(c).or_default().push((m.clone(), uri.clone()));
        }
        for code in &r[4] {
            resps.entry(c).or_default().push(code.parse().unwrap());
        }
    }
    let mut ts: Vec<HttpTx> = Vec::new();
    for (c, rq) in &reqs {
        let rs = resps.get(c).cloned().unwrap_or_default();
        for (i, (m, uri)) in rq.iter().enumerate() {
            ts.push((*c, Some(m.clone()), Some(uri.clone()), rs.get(i).copied()));
        }
    }
    let fa: Vec<HttpTx> = fathom(&pcap)
        .iter()
        .filter_map(|r| match &r.exchange.detail {
            L7Detail::Http(h) => Some((r.source.port, h.method.clone(), h.path.clone(), h.status)),
            _ => None,
        })
        .collect();
    agree("http1 curl↔nginx", &ts, &fa);
    let mut want: Vec<(String, String, u16)> = sent
        .iter()
        .map(|(m, p, s)| (m.to_string(), p.to_string(), *s))
        .collect();
    let mut got: Vec<(String, String, u16)> = ts
        .iter()
        .map(|(_, m, p, s)| (m.clone().unwrap(), p.clone().unwrap(), s.unwrap_or(0)))
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "tshark did not see what curl sent");
    assert_eq!(reqs.len(), sent.len() - 1, "one connection per curl run");
}

// ---------------------------------------------------------------------------------------
// HTTP/2 (h2c prior knowledge and gRPC): headers per stream from tshark

#[derive(Debug, Default, Clone)]
struct H2Stream {
    request: Vec<(String, String)>,
    /// Response header blocks in order (headers, then trailers).
    response: Vec<Vec<(String, String)>>,
}

impl H2Stream {
    fn req(&self, name: &str) -> Option<String> {
        self.request
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn resp(&self, name: &str) -> Option<String> {
        // Trailers come last and win (grpc-status of a call with a body).
        self.response
            .iter()
            .rev()
            .find_map(|b| b.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()))
    }
}

/// Header blocks per (client port, stream id), and the GOAWAY frames per client port. tshark
/// reports, per frame, the stream id and type of every HTTP/2 frame in it, and per HEADERS
/// frame its header count; names and values of all HEADERS frames are concatenated, so the
/// counts cut them apart.
fn h2_streams(t: &Tools, pcap: &Path, port: u16) -> (BTreeMap<(u16, u32), H2Stream>, Vec<u16>) {
    let rows = tshark(
        t,
        pcap,
        &[format!("tcp.port=={port},http2")],
        "http2.type == 1 || http2.type == 7",
        &[
            "tcp.srcport",
            "tcp.dstport",
            "http2.streamid",
            "http2.type",
            "http2.header.count",
            "http2.header.name",
            "http2.header.value",
        ],
    );
    let mut streams: BTreeMap<(u16, u32), H2Stream> = BTreeMap::new();
    let mut goaways = Vec::new();
    for r in &rows {
        let c = client_port(port, &r[0], &r[1]);
        let from_client = r[0].first().and_then(|p| p.parse::<u16>().ok()) != Some(port);
        let (mut k, mut h) = (0usize, 0usize);
        for (sid, ty) in r[2].iter().zip(&r[3]) {
            if ty == "7" {
                goaways.push(c);
            }
            if ty != "1" {
                continue;
            }
            let n: usize = r[4].get(k).and_then(|n| n.parse().ok()).unwrap_or(0);
            k += 1;
            let block: Vec<(String, String)> = (h..h + n)
                .map(|i| (r[5][i].clone(), r[6][i].clone()))
                .collect();
            h += n;
            let s = streams.entry((c, sid.parse().unwrap())).or_default();
            if from_client {
                s.request.extend(block);
            } else {
                s.response.push(block);
            }
        }
    }
    (streams, goaways)
}

/// (client port, stream id, method, path, status)
type H2Tx = (u16, u32, Option<String>, Option<String>, Option<u16>);

#[test]
fn h2c_curl_nginx() {
    let Some(t) = need("h2c_curl_nginx", &[&["nginx"], &["curl"], &["nghttp"]]) else {
        return;
    };
    let dir = TempDir::new("h2c");
    let port = free_port();
    let nginx = start_nginx(&t, &dir, None, Some(port));
    let cap = Capture::start(
        &t,
        &dir.join("h2c.pcap"),
        &format!("tcp port {port}{}", nginx.not_probes()),
    );
    let u = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let h2 = "--http2-prior-knowledge";
    run_ok(dir.path(), &mut curl(&t, &[h2, &u("/")]));
    run_ok(dir.path(), &mut curl(&t, &[h2, &u("/missing")]));
    run_ok(dir.path(), &mut curl(&t, &[h2, "-I", &u("/")]));
    run_ok(dir.path(), &mut curl(&t, &[h2, "-d", "a=1", &u("/post")]));
    run_ok(dir.path(), &mut curl(&t, &[h2, &u("/fail")]));
    run_ok(dir.path(), &mut curl(&t, &[h2, &u("/big.txt?x=1")]));
    // Several streams on one connection at the same time. curl 7.88 cannot reuse a
    // prior-knowledge connection ("Error in the HTTP2 framing layer"), so nghttp does this:
    // it also opens idle streams with PRIORITY frames, which must not become exchanges.
    fs::write(dir.join("body.json"), "{\"n\": 1}").unwrap();
    let mut c = t.cmd("nghttp");
    c.args(["-n", &u("/big.txt"), &u("/index.html"), &u("/nope")]);
    run_ok(dir.path(), &mut c);
    let mut c = t.cmd("nghttp");
    c.arg("-n")
        .arg("-d")
        .arg(dir.join("body.json"))
        .arg(u("/post"));
    run_ok(dir.path(), &mut c);
    let pcap = cap.stop();

    let (streams, goaways) = h2_streams(&t, &pcap, port);
    let mut ts: Vec<H2Tx> = streams
        .iter()
        .map(|((c, sid), s)| {
            (
                *c,
                *sid,
                s.req(":method"),
                s.req(":path"),
                s.resp(":status").and_then(|v| v.parse().ok()),
            )
        })
        .collect();
    // Fathom reports a GOAWAY as a connection-level message (stream 0, no request fields);
    // nghttp sends one before closing.
    ts.extend(goaways.iter().map(|c| (*c, 0, None, None, None)));
    let fa: Vec<H2Tx> = fathom(&pcap)
        .iter()
        .filter_map(|r| match &r.exchange.detail {
            L7Detail::Http2(h) => Some((
                r.source.port,
                h.stream_id.unwrap_or(0),
                h.method.clone(),
                h.path.clone(),
                h.status,
            )),
            _ => None,
        })
        .collect();
    agree("h2c curl↔nginx", &ts, &fa);
    let mut got: Vec<(String, String, u16)> = ts
        .iter()
        .filter(|x| x.1 != 0)
        .map(|(_, _, m, p, s)| (m.clone().unwrap(), p.clone().unwrap(), s.unwrap_or(0)))
        .collect();
    got.sort();
    let mut want: Vec<(String, String, u16)> = [
        ("GET", "/", 200),
        ("GET", "/missing", 404),
        ("HEAD", "/", 200),
        ("POST", "/post", 201),
        ("GET", "/fail", 503),
        ("GET", "/big.txt?x=1", 200),
        ("GET", "/big.txt", 200),
        ("GET", "/index.html", 200),
        ("GET", "/nope", 404),
        ("POST", "/post", 201),
    ]
    .iter()
    .map(|(m, p, s)| (m.to_string(), p.to_string(), *s))
    .collect();
    want.sort();
    assert_eq!(got, want, "tshark did not see what curl sent");
}

// ---------------------------------------------------------------------------------------
// gRPC: Python grpcio client and server

/// A unary "Echo" service from grpc's generic handlers: no .proto, no generated code, raw
/// bytes in and out. `fail` aborts with NOT_FOUND, `boom` raises (UNKNOWN).
const GRPC_PEER: &str = r#"
import sys, grpc
from concurrent import futures

def serve(port):
    def say(req, ctx):
        if req == b"fail":
            ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        if req == b"boom":
            raise RuntimeError("boom")
        return b"echo:" + req
    h = grpc.method_handlers_generic_handler(
        "fathom.peers.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)})
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[h])
    s.add_insecure_port("127.0.0.1:%d" % port)
    s.start()
    print("ready", flush=True)
    s.wait_for_termination()

def call(port, method, payloads):
    with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
        f = ch.unary_unary(method)
        for p in payloads:
            try:
                r = f(p.encode(), timeout=10)
                print("OK", len(r))
            except grpc.RpcError as e:
                print("ERR", e.code().value[0])

if sys.argv[1] == "serve":
    serve(int(sys.argv[2]))
else:
    call(int(sys.argv[2]), sys.argv[3], sys.argv[4:])
"#;

/// A Python that can import grpc: Debian's own first (python3-grpcio installs there, and a
/// pyenv shim earlier in PATH would not see it).
fn python_with_grpc() -> Option<std::path::PathBuf> {
    let mut cands = vec![std::path::PathBuf::from("/usr/bin/python3")];
    cands.extend(peers::which("python3"));
    cands.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import grpc"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// (client port, stream id, path, HTTP status, grpc-status)
type GrpcTx = (u16, u32, Option<String>, Option<u16>, Option<u32>);

#[test]
fn grpc_python() {
    let Some(t) = need("grpc_python", &[]) else {
        return;
    };
    let py = python_with_grpc();
    let Some(()) = need_that(
        "grpc_python",
        py.is_some(),
        "python3 with grpc (python3-grpcio)",
    ) else {
        return;
    };
    let py = py.unwrap();
    let dir = TempDir::new("grpc");
    fs::write(dir.join("peer.py"), GRPC_PEER).unwrap();
    let port = free_port();
    let mut server = Guarded::spawn(
        "grpc server",
        Command::new(&py)
            .arg(dir.join("peer.py"))
            .args(["serve", &port.to_string()]),
        &dir.join("server.log"),
    );
    server.wait_log("ready", START);
    server.wait_tcp(port, START);
    let cap = Capture::start(
        &t,
        &dir.join("grpc.pcap"),
        &format!("tcp port {port}{}", server.not_probes()),
    );
    let call = |method: &str, payloads: &[&str]| {
        let r = run_ok(
            dir.path(),
            Command::new(&py)
                .arg(dir.join("peer.py"))
                .args(["call", &port.to_string(), method])
                .args(payloads),
        );
        r.stdout.lines().map(str::to_string).collect::<Vec<_>>()
    };
    let big = "x".repeat(100_000);
    let out1 = call("/fathom.peers.Echo/Say", &["hello", "fail", "again", &big]);
    let out2 = call("/fathom.peers.Echo/Say", &["boom"]);
    let out3 = call("/fathom.peers.Echo/Nope", &["x"]);
    let pcap = cap.stop();
    assert_eq!(out1, ["OK 10", "ERR 5", "OK 10", "OK 100005"]);
    assert_eq!(out2, ["ERR 2"]);
    assert_eq!(out3, ["ERR 12"]);

    let (streams, _) = h2_streams(&t, &pcap, port);
    let ts: Vec<GrpcTx> = streams
        .iter()
        .map(|((c, sid), s)| {
            (
                *c,
                *sid,
                s.req(":path"),
                s.resp(":status").and_then(|v| v.parse().ok()),
                s.resp("grpc-status").and_then(|v| v.parse().ok()),
            )
        })
        .collect();
    let fa: Vec<GrpcTx> = fathom(&pcap)
        .iter()
        .filter_map(|r| match &r.exchange.detail {
            L7Detail::Grpc(g) => Some((
                r.source.port,
                g.stream_id.unwrap_or(0),
                match (&g.service, &g.method) {
                    (Some(s), Some(m)) => Some(format!("/{s}/{m}")),
                    _ => None,
                },
                g.http_status,
                g.grpc_status,
            )),
            _ => None,
        })
        .collect();
    agree("grpc python client↔server", &ts, &fa);
    let mut statuses: Vec<(String, u32)> = ts
        .iter()
        .map(|(_, _, p, _, g)| (p.clone().unwrap(), g.unwrap()))
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            ("/fathom.peers.Echo/Nope".to_string(), 12),
            ("/fathom.peers.Echo/Say".to_string(), 0),
            ("/fathom.peers.Echo/Say".to_string(), 0),
            ("/fathom.peers.Echo/Say".to_string(), 0),
            ("/fathom.peers.Echo/Say".to_string(), 2),
            ("/fathom.peers.Echo/Say".to_string(), 5),
        ]
    );
}

// ---------------------------------------------------------------------------------------
// DNS: dig ↔ dnsmasq

fn qtype_name(n: &str) -> String {
    match n {
        "1" => "A",
        "2" => "NS",
        "5" => "CNAME",
        "6" => "SOA",
        "12" => "PTR",
        "15" => "MX",
        "16" => "TXT",
        "28" => "AAAA",
        "33" => "SRV",
        "255" => "ANY",
        other => other,
    }
    .to_string()
}

fn rcode_name(n: &str) -> String {
    match n {
        "0" => "NOERROR",
        "1" => "FORMERR",
        "2" => "SERVFAIL",
        "3" => "NXDOMAIN",
        "4" => "NOTIMP",
        "5" => "REFUSED",
        other => other,
    }
    .to_string()
}

/// (transport, client port, id, qname, qtype, rcode)
type DnsTx = (
    String,
    u16,
    u16,
    Option<String>,
    Option<String>,
    Option<String>,
);

#[test]
fn dns_dig_dnsmasq() {
    let Some(t) = need("dns_dig_dnsmasq", &[&["dnsmasq"], &["dig"]]) else {
        return;
    };
    let dir = TempDir::new("dns");
    let port = free_port();
    // Only local answers: --no-resolv/--no-hosts and no upstream servers, so nothing leaves
    // the machine; names outside the configured ones are REFUSED.
    let mut cmd = t.cmd("dnsmasq");
    cmd.args([
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        "--user=root",
        "--group=root",
        "--log-queries",
    ])
    .arg(format!("--port={port}"))
    .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
    .arg(format!(
        "--log-facility={}",
        dir.join("dnsmasq.log").display()
    ))
    .args([
        "--address=/peer.test/10.1.2.3",
        "--host-record=both.test,10.1.2.4,fd00::4",
        "--txt-record=txt.test,fathom peers",
        // No address: NXDOMAIN for everything under nx.test.
        "--address=/nx.test/",
    ]);
    let mut server = Guarded::spawn("dnsmasq", &mut cmd, &dir.join("dnsmasq.out"));
    server.wait_tcp(port, START);
    let cap = Capture::start(
        &t,
        &dir.join("dns.pcap"),
        &format!("port {port}{}", server.not_probes()),
    );
    let dig = |args: &[&str]| {
        let mut c = t.cmd("dig");
        c.args(["+tries=1", "+time=3", "-p", &port.to_string(), "@127.0.0.1"])
            .args(args);
        run_ok(dir.path(), &mut c).stdout
    };
    let sent = [
        ("udp", "peer.test", "A", "NOERROR"),
        ("udp", "both.test", "AAAA", "NOERROR"),
        ("udp", "txt.test", "TXT", "NOERROR"),
        ("udp", "nope.nx.test", "A", "NXDOMAIN"),
        ("udp", "other.example", "MX", "REFUSED"),
        ("tcp", "both.test", "A", "NOERROR"),
        ("tcp", "missing.nx.test", "AAAA", "NXDOMAIN"),
    ];
    for (tr, name, ty, rcode) in sent {
        let mut args = vec![name, ty];
        if tr == "tcp" {
            args.push("+tcp");
        }
        let out = dig(&args);
        assert!(
            out.contains(&format!("status: {rcode}")),
            "dig {name} {ty}: {out}"
        );
    }
    // Several queries from one dig process (one UDP socket each).
    dig(&["peer.test", "A", "both.test", "A", "x.nx.test", "TXT"]);
    let pcap = cap.stop();

    let rows = tshark(
        &t,
        &pcap,
        &[
            format!("udp.port=={port},dns"),
            format!("tcp.port=={port},dns"),
        ],
        "dns",
        &[
            "udp.srcport",
            "udp.dstport",
            "tcp.srcport",
            "tcp.dstport",
            "dns.id",
            "dns.flags.response",
            "dns.qry.name",
            "dns.qry.type",
            "dns.flags.rcode",
        ],
    );
    let mut by_key: BTreeMap<(String, u16, u16), DnsTx> = BTreeMap::new();
    for r in &rows {
        let (tr, c) = if r[0].is_empty() {
            ("tcp", client_port(port, &r[2], &r[3]))
        } else {
            ("udp", client_port(port, &r[0], &r[1]))
        };
        let id = u16::from_str_radix(r[4][0].trim_start_matches("0x"), 16).unwrap();
        let e = by_key
            .entry((tr.to_string(), c, id))
            .or_insert_with(|| (tr.to_string(), c, id, None, None, None));
        e.3 = first(&r[6]);
        e.4 = r[7].first().map(|q| qtype_name(q));
        if r[5].first().map(String::as_str) == Some("1") {
            e.5 = r[8].first().map(|c| rcode_name(c));
        }
    }
    let ts: Vec<DnsTx> = by_key.into_values().collect();
    let fa: Vec<DnsTx> = fathom(&pcap)
        .iter()
        .filter_map(|r| match &r.exchange.detail {
            L7Detail::Dns(d) => Some((
                d.transport.clone(),
                r.source.port,
                d.id,
                d.qname.clone(),
                d.qtype.clone(),
                d.rcode.clone(),
            )),
            _ => None,
        })
        .collect();
    agree("dns dig↔dnsmasq", &ts, &fa);
    for (tr, name, ty, rcode) in sent {
        assert!(
            ts.iter().any(|x| x.0 == tr
                && x.3.as_deref() == Some(name)
                && x.4.as_deref() == Some(ty)
                && x.5.as_deref() == Some(rcode)),
            "tshark did not see {tr} {name} {ty} → {rcode}"
        );
    }
    assert_eq!(ts.len(), sent.len() + 3);
}

// ---------------------------------------------------------------------------------------
// Redis: redis-cli ↔ redis-server

/// (client port, command, key, reply type, error text)
type RedisTx = (
    u16,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn unhex(s: &str) -> String {
    let bytes: Vec<u8> = (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn redis_cli_server() {
    let Some(t) = need("redis_cli_server", &[&["redis-server"], &["redis-cli"]]) else {
        return;
    };
    let dir = TempDir::new("redis");
    let port = free_port();
    let mut cmd = t.cmd("redis-server");
    cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--port", &port.to_string(), "--daemonize", "no"])
        .arg("--dir")
        .arg(dir.path());
    let mut server = Guarded::spawn("redis-server", &mut cmd, &dir.join("redis.log"));
    server.wait_tcp(port, START);
    let cap = Capture::start(
        &t,
        &dir.join("redis.pcap"),
        &format!("tcp port {port}{}", server.not_probes()),
    );
    let cli = |args: &[&str]| {
        let mut c = t.cmd("redis-cli");
        c.args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args);
        run_ok(dir.path(), &mut c).stdout
    };
    // What redis-cli sends, and the reply type each must get.
    let sent: Vec<(&[&str], &str)> = vec![
        (&["SET", "k1", "v1"], "simple_string"),
        (&["GET", "k1"], "bulk_string"),
        (&["GET", "nokey"], "null"),
        (&["BOGUS", "a", "b"], "error"),
        (&["LPUSH", "k1", "x"], "error"),
        (&["HSET", "h", "f", "v", "g", "w"], "integer"),
        (&["HGETALL", "h"], "array"),
        (&["DEL", "k1", "h"], "integer"),
    ];
    for (args, _) in &sent {
        cli(args);
    }
    // A session with several commands on one connection (redis-cli reads them from stdin
    // and waits for each reply).
    let mut c = t.cmd("redis-cli");
    c.args(["-h", "127.0.0.1", "-p", &port.to_string()]).stdin(
        fs::File::open({
            let p = dir.join("cmds.txt");
            fs::write(
                &p,
                "INCR counter\nINCR counter\nGET counter\nEXISTS counter\n",
            )
            .unwrap();
            p
        })
        .unwrap(),
    );
    run_ok(dir.path(), &mut c);
    let pcap = cap.stop();

    let rows = tshark(
        &t,
        &pcap,
        &[format!("tcp.port=={port},resp")],
        "resp",
        &[
            "tcp.srcport",
            "tcp.dstport",
            "resp.bulk_string.value",
            "resp.bulk_string.length",
            "resp.string",
            "resp.error",
            "resp.integer",
            "resp.array.length",
        ],
    );
    let mut conns: BTreeMap<u16, Vec<RedisTx>> = BTreeMap::new();
    for r in &rows {
        let c = client_port(port, &r[0], &r[1]);
        let v = conns.entry(c).or_default();
        if r[0].first().and_then(|p| p.parse::<u16>().ok()) != Some(port) {
            // A command: an array of bulk strings, name first, key second. Fathom names the
            // subcommand of container commands (`COMMAND DOCS`, which redis-cli sends when
            // reading commands from stdin) and gives them no key.
            let args: Vec<String> = r[2].iter().map(|s| unhex(s)).collect();
            let name = args.first().map(|s| s.to_uppercase());
            let (name, key) = match (name.as_deref(), args.get(1)) {
                (Some(n @ ("COMMAND" | "CLIENT" | "CONFIG")), Some(sub)) => {
                    (Some(format!("{n} {}", sub.to_uppercase())), None)
                }
                _ => (name, args.get(1).cloned()),
            };
            v.push((c, name, key, None, None));
        } else if let Some(last) = v.iter_mut().find(|x| x.3.is_none()) {
            // RESP answers in order: a reply belongs to the oldest unanswered command (a
            // pipelined client has several outstanding). The reply's outermost type, as
            // tshark shows it.
            let ty = if !r[7].is_empty() {
                "array"
            } else if !r[5].is_empty() {
                "error"
            } else if !r[6].is_empty() {
                "integer"
            } else if !r[4].is_empty() {
                "simple_string"
            } else if r[3].first().map(String::as_str) == Some("-1") {
                "null"
            } else {
                "bulk_string"
            };
            last.3 = Some(ty.to_string());
            last.4 = first(&r[5]);
        }
    }
    let ts: Vec<RedisTx> = conns.values().flatten().cloned().collect();
    let fa: Vec<RedisTx> = fathom(&pcap)
        .iter()
        .filter_map(|r| match &r.exchange.detail {
            L7Detail::Redis(d) => Some((
                r.source.port,
                d.command.clone(),
                d.key.clone(),
                d.reply_type.clone(),
                d.error.clone(),
            )),
            _ => None,
        })
        .collect();
    agree("redis redis-cli↔redis-server", &ts, &fa);
    // And against what redis-cli was told to send, in order.
    let mut want: Vec<(String, Option<String>, Option<String>)> = sent
        .iter()
        .map(|(a, ty)| {
            (
                a[0].to_string(),
                a.get(1).map(|k| k.to_string()),
                Some(ty.to_string()),
            )
        })
        .collect();
    want.extend(
        [
            ("INCR", "integer"),
            ("INCR", "integer"),
            ("GET", "bulk_string"),
            ("EXISTS", "integer"),
        ]
        .iter()
        .map(|(c, ty)| {
            (
                c.to_string(),
                Some("counter".to_string()),
                Some(ty.to_string()),
            )
        }),
    );
    let got: Vec<(String, Option<String>, Option<String>)> = conns
        .values()
        .flatten()
        .filter_map(|x| Some((x.1.clone()?, x.2.clone(), x.3.clone())))
        // redis-cli's own introspection, not part of what it was asked to send.
        .filter(|x| !x.0.starts_with("COMMAND"))
        .collect();
    assert_eq!(got, want, "tshark vs what redis-cli sent");
}

// ---------------------------------------------------------------------------------------
// tshark JSON (PostgreSQL and MySQL: several messages per frame, with structure)

/// Per frame: (source port, destination port, the protocol's PDUs in order).
fn tshark_json_pdus(
    t: &Tools,
    pcap: &Path,
    decode_as: &str,
    proto: &str,
) -> Vec<(u16, u16, Vec<Value>)> {
    let mut cmd = t.cmd("tshark");
    cmd.arg("-n")
        .arg("-r")
        .arg(pcap)
        .args([
            "-d",
            decode_as,
            "-Y",
            proto,
            "-T",
            "json",
            "--no-duplicate-keys",
        ])
        .args(["-J", &format!("tcp {proto}")]);
    let r = run(pcap.parent().unwrap(), &mut cmd, Duration::from_secs(60));
    assert!(r.status.success(), "tshark: {}", r.stderr);
    let frames: Vec<Value> = serde_json::from_str(&r.stdout).expect("tshark json");
    frames
        .iter()
        .map(|f| {
            let layers = &f["_source"]["layers"];
            let port = |k: &str| {
                layers["tcp"][k]
                    .as_str()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0)
            };
            let pdus = match &layers[proto] {
                Value::Array(a) => a.clone(),
                v @ Value::Object(_) => vec![v.clone()],
                _ => Vec::new(),
            };
            (port("tcp.srcport"), port("tcp.dstport"), pdus)
        })
        .collect()
}

/// First value of `key` anywhere in a PDU's tree.
fn find_str(v: &Value, key: &str) -> Option<String> {
    match v {
        Value::Object(m) => m
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| m.values().find_map(|x| find_str(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find_str(x, key)),
        _ => None,
    }
}

fn has_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => m.contains_key(key) || m.values().any(|x| has_key(x, key)),
        Value::Array(a) => a.iter().any(|x| has_key(x, key)),
        _ => false,
    }
}

/// (client port, kind/command, statement, error code)
type SqlTx = (u16, String, Option<String>, Option<String>);

/// Attaches a server error to the latest client exchange of the connection (the clients here
/// wait for each answer before sending the next request).
fn attach_error(conn: &mut [SqlTx], code: String) {
    if let Some(last) = conn.last_mut() {
        last.3.get_or_insert(code);
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL: psql and pgbench ↔ postgres

#[test]
fn postgres_psql_pgbench() {
    let Some(t) = need(
        "postgres_psql_pgbench",
        &[&["initdb"], &["postgres"], &["psql"], &["pgbench"]],
    ) else {
        return;
    };
    let ids = user_ids("postgres");
    let Some(()) = need_that("postgres_psql_pgbench", ids.is_some(), "the postgres user") else {
        return;
    };
    let (uid, gid) = ids.unwrap();
    let dir = TempDir::new("postgres");
    let data = dir.join("data");
    let sock = dir.join("sock");
    for d in [&data, &sock] {
        fs::create_dir_all(d).unwrap();
        peers::chown_tree(d, uid, gid);
    }
    // initdb and postgres refuse to run as root: run them as the postgres user. The server
    // binary is taken from initdb's directory so both are the same version.
    let initdb = t.get("initdb").to_path_buf();
    let postgres = initdb
        .parent()
        .map(|d| d.join("postgres"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| t.get("postgres").to_path_buf());
    let mut c = Command::new(&initdb);
    c.arg("-D")
        .arg(&data)
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .uid(uid)
        .gid(gid)
        .current_dir(dir.path());
    let r = run(dir.path(), &mut c, Duration::from_secs(60));
    assert!(r.status.success(), "initdb: {}{}", r.stdout, r.stderr);
    let port = free_port();
    let mut cmd = Command::new(&postgres);
    cmd.arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "fsync=off", "-c", "logging_collector=off"])
        .arg("-k")
        .arg(&sock)
        .uid(uid)
        .gid(gid)
        .current_dir(dir.path());
    let mut server = Guarded::spawn("postgres", &mut cmd, &dir.join("postgres.log"));
    server.wait_log("ready to accept connections", START);
    server.wait_tcp(port, START);
    let cap = Capture::start(
        &t,
        &dir.join("postgres.pcap"),
        &format!("tcp port {port}{}", server.not_probes()),
    );
    let psql = |sql: &[&str]| {
        let mut c = t.cmd("psql");
        c.args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
        ]);
        for s in sql {
            c.args(["-c", s]);
        }
        run(dir.path(), &mut c, Duration::from_secs(20))
    };
    assert!(psql(&["select 1 as one"]).status.success());
    assert!(!psql(&["select * from nosuch"]).status.success());
    assert!(psql(&["PREPARE s(int) AS SELECT $1 + 1", "EXECUTE s(41)"])
        .status
        .success());
    assert!(
        psql(&["create table t(a int); insert into t values (1),(2); select a from t"])
            .status
            .success()
    );
    // pgbench -M prepared: the extended protocol with named statements (Parse/Bind/Execute).
    fs::write(
        dir.join("q.sql"),
        "\\set x 5\nSELECT :x::int + 1;\nSELECT a FROM t WHERE a = :x;\n",
    )
    .unwrap();
    let mut c = t.cmd("pgbench");
    c.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "postgres",
        "-n",
    ])
    .args(["-M", "prepared", "-t", "2", "-f"])
    .arg(dir.join("q.sql"))
    .arg("postgres");
    run_ok(dir.path(), &mut c);
    // And one whose statement fails to prepare.
    fs::write(dir.join("bad.sql"), "SELECT * FROM nosuch2;\n").unwrap();
    let mut c = t.cmd("pgbench");
    c.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "postgres",
        "-n",
    ])
    .args(["-M", "prepared", "-t", "1", "-f"])
    .arg(dir.join("bad.sql"))
    .arg("postgres");
    run(dir.path(), &mut c, Duration::from_secs(20));
    let pcap = cap.stop();

    // tshark: one exchange per simple query, per Sync-terminated run of extended-protocol
    // messages, and per startup/SSL request/termination. Bind names its statement; the
    // statement's text comes from the Parse that created it (as Fathom does).
    let frames = tshark_json_pdus(&t, &pcap, &format!("tcp.port=={port},pgsql"), "pgsql");
    let mut conns: BTreeMap<u16, Vec<SqlTx>> = BTreeMap::new();
    let mut names: HashMap<(u16, String), String> = HashMap::new();
    let mut open_ext: HashMap<u16, bool> = HashMap::new();
    for (src, dst, pdus) in &frames {
        let from_client = *src != port;
        let c = if from_client { *src } else { *dst };
        let v = conns.entry(c).or_default();
        for p in pdus {
            let ty = find_str(p, "pgsql.type").unwrap_or_default();
            if !from_client {
                if ty == "Error" {
                    attach_error(v, find_str(p, "pgsql.code").unwrap_or_default());
                }
                continue;
            }
            let simple = |kind: &str| (c, kind.to_string(), None, None);
            match ty.as_str() {
                "SSL request" => v.push(simple("ssl_request")),
                "Startup message" => v.push(simple("startup")),
                "Termination" => v.push(simple("terminate")),
                "Simple query" => {
                    v.push((c, "query".into(), find_str(p, "pgsql.query"), None));
                }
                "Sync" => {
                    // A Sync closes the open run of extended-protocol messages; a lone Sync
                    // is an exchange of its own (the server still answers ReadyForQuery).
                    let was_open = open_ext.remove(&c).unwrap_or(false);
                    if !was_open {
                        v.push(simple("extended_query"));
                    }
                }
                "Parse" | "Bind" | "Describe" | "Execute" | "Close" | "Flush" => {
                    if !open_ext.get(&c).copied().unwrap_or(false) {
                        v.push(simple("extended_query"));
                        open_ext.insert(c, true);
                    }
                    let stmt = find_str(p, "pgsql.statement").unwrap_or_default();
                    let text = if ty == "Parse" {
                        let q = find_str(p, "pgsql.query").unwrap_or_default();
                        names.insert((c, stmt), q.clone());
                        Some(q)
                    } else if ty == "Bind" {
                        names.get(&(c, stmt)).cloned()
                    } else {
                        None
                    };
                    if let (Some(last), Some(text)) = (v.last_mut(), text) {
                        last.2.get_or_insert(text);
                    }
                }
                _ => {}
            }
        }
    }
    let ts: Vec<SqlTx> = conns.values().flatten().cloned().collect();
    let fa: Vec<SqlTx> = fathom(&pcap)
        .iter()
        .filter_map(|r| match &r.exchange.detail {
            L7Detail::Postgres(m) => Some((
                r.source.port,
                m.kind.clone(),
                m.statement.clone(),
                m.error_code.clone(),
            )),
            _ => None,
        })
        .collect();
    agree("postgres psql/pgbench↔postgres", &ts, &fa);
    let has = |kind: &str, stmt: &str, err: Option<&str>| {
        ts.iter()
            .any(|x| x.1 == kind && x.2.as_deref() == Some(stmt) && x.3.as_deref() == err)
    };
    assert!(has("query", "select 1 as one", None));
    assert!(has("query", "select * from nosuch", Some("42P01")));
    assert!(has("query", "EXECUTE s(41)", None));
    assert!(has("extended_query", "SELECT $1::int + 1;", None));
    assert!(has(
        "extended_query",
        "SELECT * FROM nosuch2;",
        Some("42P01")
    ));
}

// ---------------------------------------------------------------------------------------
// MySQL protocol: mariadb client and Perl DBD::MariaDB ↔ MariaDB

fn mysql_command_name(n: &str) -> String {
    match n {
        "1" => "COM_QUIT",
        "2" => "COM_INIT_DB",
        "3" => "COM_QUERY",
        "14" => "COM_PING",
        "22" => "COM_STMT_PREPARE",
        "23" => "COM_STMT_EXECUTE",
        "25" => "COM_STMT_CLOSE",
        "26" => "COM_STMT_RESET",
        other => other,
    }
    .to_string()
}

#[test]
fn mysql_mariadb() {
    let Some(t) = need(
        "mysql_mariadb",
        &[
            &["mariadbd", "mysqld"],
            &["mariadb-install-db", "mysql_install_db"],
            &["mariadb", "mysql"],
            &["perl"],
        ],
    ) else {
        return;
    };
    let dbd = Command::new(t.get("perl"))
        .args(["-MDBI", "-MDBD::MariaDB", "-e", "1"])
        .output()
        .is_ok_and(|o| o.status.success());
    let Some(()) = need_that(
        "mysql_mariadb",
        dbd,
        "Perl DBD::MariaDB (libdbd-mariadb-perl)",
    ) else {
        return;
    };
    let dir = TempDir::new("mysql");
    let data = dir.join("data");
    let mut c = t.cmd("mariadb-install-db");
    c.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args([
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ])
        .args(["--skip-name-resolve"]);
    let r = run(dir.path(), &mut c, Duration::from_secs(60));
    assert!(r.status.success(), "install-db: {}{}", r.stdout, r.stderr);
    let port = free_port();
    let mut cmd = t.cmd("mariadbd");
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
        .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
        .arg(format!("--port={port}"))
        .args([
            "--user=root",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
        ])
        .args([
            "--skip-log-bin",
            "--innodb-buffer-pool-size=16M",
            "--innodb-log-file-size=4M",
        ]);
    let mut server = Guarded::spawn("mariadbd", &mut cmd, &dir.join("mariadbd.log"));
    server.wait_log("ready for connections", Duration::from_secs(60));
    server.wait_tcp(port, START);
    let cap = Capture::start(
        &t,
        &dir.join("mysql.pcap"),
        &format!("tcp port {port}{}", server.not_probes()),
    );
    let client = |sql: &str| {
        let mut c = t.cmd("mariadb");
        c.args([
            "--no-defaults",
            "-h",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "-u",
            "root",
        ])
        .args(["-e", sql]);
        run(dir.path(), &mut c, Duration::from_secs(20))
    };
    assert!(client("select 1+1 as two").status.success());
    assert!(!client("select * from mysql.nosuch").status.success());
    assert!(
        client("PREPARE s FROM 'select ? * 2'; SET @a = 21; EXECUTE s USING @a")
            .status
            .success()
    );
    assert!(client("create database p; create table p.t(a int); insert into p.t values (1),(2); select * from p.t").status.success());
    // Binary-protocol prepared statements (COM_STMT_PREPARE/EXECUTE) from DBD::MariaDB.
    let perl = format!(
        r#"use DBI;
my $d = DBI->connect("DBI:MariaDB:host=127.0.0.1;port={port};mariadb_server_prepare=1", "root", "",
  {{RaiseError => 0, PrintError => 0}}) or die "connect: $DBI::errstr";
my $s = $d->prepare("select ? + 1 as x") or die;
$s->execute(41) or die; print join(",", $s->fetchrow_array), "\n";
$s->execute(1) or die; print join(",", $s->fetchrow_array), "\n";
my $e = $d->prepare("select * from p.nosuch2 where a = ?");
print defined $e ? "prepared\n" : "error ", $d->err, "\n";
$d->disconnect;
"#
    );
    let out = run_ok(dir.path(), Command::new(t.get("perl")).args(["-e", &perl])).stdout;
    assert_eq!(out, "42\n2\nerror 1146\n");
    let pcap = cap.stop();

    let frames = tshark_json_pdus(&t, &pcap, &format!("tcp.port=={port},mysql"), "mysql");
    let mut conns: BTreeMap<u16, Vec<SqlTx>> = BTreeMap::new();
    let mut stmts: HashMap<(u16, String), String> = HashMap::new();
    let mut last_prepare: HashMap<u16, String> = HashMap::new();
    for (src, dst, pdus) in &frames {
        let from_client = *src != port;
        let c = if from_client { *src } else { *dst };
        let v = conns.entry(c).or_default();
        for p in pdus {
            if from_client {
                if has_key(p, "mysql.login_request") {
                    v.push((c, "handshake".into(), None, None));
                    continue;
                }
                let Some(cmd) = find_str(p, "mysql.command") else {
                    continue;
                };
                let name = mysql_command_name(&cmd);
                let text = match name.as_str() {
                    "COM_QUERY" => find_str(p, "mysql.query"),
                    "COM_STMT_PREPARE" => {
                        let q = find_str(p, "mysql.query");
                        last_prepare.insert(c, q.clone().unwrap_or_default());
                        q
                    }
                    "COM_STMT_EXECUTE" | "COM_STMT_CLOSE" | "COM_STMT_RESET" => {
                        find_str(p, "mysql.stmt_id").and_then(|id| stmts.get(&(c, id)).cloned())
                    }
                    _ => None,
                };
                v.push((c, name, text, None));
            } else if let Some(code) = find_str(p, "mysql.error_code") {
                attach_error(v, code);
            } else if let (Some(id), Some(q)) =
                (find_str(p, "mysql.stmt_id"), last_prepare.remove(&c))
            {
                // COM_STMT_PREPARE_OK names the statement id the executes will use.
                stmts.insert((c, id), q);
            }
        }
    }
    let ts: Vec<SqlTx> = conns.values().flatten().cloned().collect();
    let fa: Vec<SqlTx> = fathom(&pcap)
        .iter()
        .filter_map(|r: &L7Record| match &r.exchange.detail {
            L7Detail::Mysql(m) => Some((
                r.source.port,
                m.command.clone(),
                m.statement.clone(),
                m.error_code.map(|c| c.to_string()),
            )),
            _ => None,
        })
        .collect();
    agree("mysql mariadb/DBD::MariaDB↔mariadbd", &ts, &fa);
    let has = |cmd: &str, stmt: &str, err: Option<&str>| {
        ts.iter()
            .any(|x| x.1 == cmd && x.2.as_deref() == Some(stmt) && x.3.as_deref() == err)
    };
    assert!(has("COM_QUERY", "select 1+1 as two", None));
    assert!(has("COM_QUERY", "select * from mysql.nosuch", Some("1146")));
    assert!(has("COM_STMT_EXECUTE", "select ? + 1 as x", None));
    assert!(has(
        "COM_STMT_PREPARE",
        "select * from p.nosuch2 where a = ?",
        Some("1146")
    ));
}

/// Prints Fathom's records for `FATHOM_PEERS_DUMP=FILE` (a debugging aid for the above).
#[test]
#[ignore]
fn dump_capture() {
    let Some(p) = std::env::var_os("FATHOM_PEERS_DUMP") else {
        return;
    };
    for r in fathom(Path::new(&p)) {
        println!("{}", serde_json::to_string(&r).unwrap());
    }
}
