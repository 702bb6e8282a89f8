//! Network policy conformance in a real lab, modelled on the Kubernetes NetworkPolicy e2e
//! suite: namespaces x, y, z with pods a, b, c (label `pod: a` …), each serving TCP and UDP
//! on 80 and 81 (named ports serve-80-tcp …). For each scenario the agent applies the
//! documents (`fathom policy apply`), every pod probes every other pod on all four ports at
//! once, and the reachability matrix must equal the expected one. The expectation comes from
//! the pure evaluator over the same documents and inventory, and for key scenarios also from
//! a truth written by hand here, so the test never only compares two of our own components.
//! Then: audit mode, bad input that must change nothing in the kernel, and persistence.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use fathom_lab::{LabGuard, LabSpec, LabState};
use fathom_policy::{
    evaluate, load_str, Action, ContainerPort, Endpoint, Endpoints, LoadOptions, Packet, Peer,
    PortProtocol, L4,
};
use serde_json::Value;
use support::{fathom, serial, Agent};

const SPEC: &str = r#"
namespaces:
  - name: x
    pods: &pods
      - name: a
        labels: {pod: a}
        ports: &ports
          - {name: serve-80-tcp, port: 80, protocol: TCP}
          - {name: serve-81-tcp, port: 81, protocol: TCP}
          - {name: serve-80-udp, port: 80, protocol: UDP}
          - {name: serve-81-udp, port: 81, protocol: UDP}
      - name: b
        labels: {pod: b}
        ports: *ports
      - name: c
        labels: {pod: c}
        ports: *ports
  - name: y
    pods: *pods
  - name: z
    pods: *pods
"#;

const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Proto {
    Tcp,
    Udp,
}

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Probe {
    from: String, // "x/a"
    to: String,
    port: u16,
    proto: Proto,
}

impl Probe {
    fn src_ns(&self) -> &str {
        &self.from[..1]
    }
    fn dst_ns(&self) -> &str {
        &self.to[..1]
    }
    fn src_pod(&self) -> &str {
        &self.from[2..]
    }
    fn dst_pod(&self) -> &str {
        &self.to[2..]
    }
}

type Matrix = BTreeMap<Probe, bool>;

struct Lab {
    _guard: LabGuard,
    /// The lab as the test last wrote it (labels change; the guard keeps what it tears down).
    state: LabState,
}

impl Lab {
    /// Namespace x with pods a and b, serving (see `serve`).
    fn two_pods(prefix: &str) -> Lab {
        let spec = LabSpec::from_yaml(
            "namespaces:\n- name: x\n  pods:\n  - {name: a, labels: {pod: a}}\n  - {name: b, labels: {pod: b}}\n",
        )
        .expect("spec");
        let guard = LabGuard::up_named(&spec, &fathom_lab::unique_name(prefix)).expect("lab up");
        let state = guard.state().clone();
        let lab = Lab {
            _guard: guard,
            state,
        };
        lab.serve();
        lab
    }

    fn state(&self) -> &LabState {
        &self.state
    }

    fn pods(&self) -> Vec<String> {
        self.state().pods.iter().map(|p| p.full_name()).collect()
    }

    fn pod(&self, name: &str) -> &fathom_lab::LabPod {
        self.state()
            .pods
            .iter()
            .find(|p| p.full_name() == name)
            .expect("pod")
    }

    /// TCP accept-and-close and UDP echo on 80 and 81 in every pod, on threads that live as
    /// long as the test process (the lab's teardown takes their namespaces away).
    fn serve(&self) {
        for pod in &self.state().pods {
            for port in [80u16, 81] {
                let (tcp, udp) = pod
                    .in_netns(|| {
                        (
                            TcpListener::bind(("0.0.0.0", port)).expect("tcp bind"),
                            UdpSocket::bind(("0.0.0.0", port)).expect("udp bind"),
                        )
                    })
                    .expect("netns");
                std::thread::spawn(move || {
                    for s in tcp.incoming().flatten() {
                        let mut s = s;
                        let _ = s.write_all(b"ok");
                    }
                });
                std::thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok((n, from)) = udp.recv_from(&mut buf) {
                        let _ = udp.send_to(&buf[..n], from);
                    }
                });
            }
        }
    }

    fn probe_one(&self, p: &Probe, timeout: Duration) -> bool {
        let src = self.pod(&p.from);
        let dst = SocketAddr::new(IpAddr::V4(self.pod(&p.to).ipv4), p.port);
        src.in_netns(|| match p.proto {
            Proto::Tcp => TcpStream::connect_timeout(&dst, timeout)
                .and_then(|mut s| {
                    s.set_read_timeout(Some(timeout))?;
                    let mut b = [0u8; 2];
                    s.read_exact(&mut b)
                })
                .is_ok(),
            Proto::Udp => (|| -> std::io::Result<bool> {
                let s = UdpSocket::bind("0.0.0.0:0")?;
                s.set_read_timeout(Some(timeout))?;
                s.send_to(b"ping", dst)?;
                let mut b = [0u8; 8];
                let (n, from) = s.recv_from(&mut b)?;
                Ok(from == dst && &b[..n] == b"ping")
            })()
            .unwrap_or(false),
        })
        .unwrap_or(false)
    }

    /// Every pod to every other pod on TCP/UDP 80/81, all at once.
    fn probe_all(&self) -> Matrix {
        let probes = all_probes(&self.pods());
        let results: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = probes
                .iter()
                .map(|p| s.spawn(|| self.probe_one(p, PROBE_TIMEOUT)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(false))
                .collect()
        });
        probes.into_iter().zip(results).collect()
    }

    /// The inventory as the agent builds it (endpoint id = host veth ifindex).
    fn endpoints(&self) -> Endpoints {
        let st = self.state();
        let mut eps = Endpoints::new();
        for ns in &st.namespaces {
            eps.add_namespace(&ns.name, ns.labels.clone()).expect("ns");
        }
        for p in &st.pods {
            let mut ep = Endpoint::new(p.host_ifindex, &p.namespace, &p.name)
                .ip(IpAddr::V4(p.ipv4))
                .ip(IpAddr::V6(p.ipv6));
            ep.labels = p.labels.clone();
            ep.ports = p
                .ports
                .iter()
                .map(|port| ContainerPort {
                    name: port.name.clone().unwrap_or_default(),
                    port: port.port,
                    protocol: match port.protocol {
                        fathom_lab::Protocol::Tcp => PortProtocol::Tcp,
                        fathom_lab::Protocol::Udp => PortProtocol::Udp,
                        fathom_lab::Protocol::Sctp => PortProtocol::Sctp,
                    },
                })
                .collect();
            eps.add_endpoint(ep).expect("endpoint");
        }
        eps
    }

    /// What the evaluator says for every cell, given all documents applied so far.
    fn expected(&self, docs: &str) -> Matrix {
        let set = load_str("expected.yaml", docs, &LoadOptions::default()).expect("docs load");
        let eps = self.endpoints();
        let id = |name: &str| {
            eps.iter()
                .find(|e| format!("{}/{}", e.namespace, e.name) == name)
                .map(|e| Peer::Endpoint(e.id))
                .expect("endpoint")
        };
        all_probes(&self.pods())
            .into_iter()
            .map(|p| {
                let l4 = match p.proto {
                    Proto::Tcp => L4::Tcp { dport: p.port },
                    Proto::Udp => L4::Udp { dport: p.port },
                };
                let v = evaluate(&set, &eps, &Packet::new(id(&p.from), id(&p.to), l4))
                    .expect("evaluate");
                let ok = v.action != Action::Deny;
                (p, ok)
            })
            .collect()
    }

    /// Rewrite the lab's state file (labels), as an inventory change the agent picks up.
    fn rewrite_state(&mut self, f: impl FnOnce(&mut LabState)) {
        let path =
            std::path::Path::new(fathom_lab::STATE_DIR).join(format!("{}.json", self.state().name));
        let mut st: LabState =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("state")).expect("json");
        f(&mut st);
        std::fs::write(&path, serde_json::to_string_pretty(&st).expect("json")).expect("write");
        self.state = st;
    }
}

fn b_to_a(port: u16, proto: Proto) -> Probe {
    Probe {
        from: "x/b".into(),
        to: "x/a".into(),
        port,
        proto,
    }
}

fn all_probes(pods: &[String]) -> Vec<Probe> {
    let mut out = Vec::new();
    for from in pods {
        for to in pods {
            if from == to {
                continue;
            }
            for port in [80, 81] {
                for proto in [Proto::Tcp, Proto::Udp] {
                    out.push(Probe {
                        from: from.clone(),
                        to: to.clone(),
                        port,
                        proto,
                    });
                }
            }
        }
    }
    out
}

fn run_cli(agent: &Agent, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(fathom())
        .args(["policy"])
        .args(args)
        .arg("--socket")
        .arg(&agent.socket)
        .output()
        .expect("fathom policy");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn apply(agent: &Agent, dir: &std::path::Path, name: &str, yaml: &str) {
    let f = dir.join(format!("{name}.yaml"));
    std::fs::write(&f, yaml).expect("write policy");
    let (ok, out, err) = run_cli(agent, &["apply", "-f", f.to_str().expect("path")]);
    assert!(ok, "apply {name} failed: {out}{err}\n{}", agent.log());
}

fn generation(agent: &Agent) -> u64 {
    let (ok, out, err) = run_cli(agent, &["list", "-o", "json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    v["generation"].as_u64().expect("generation")
}

fn delete_all(agent: &Agent) {
    let (_, out, _) = run_cli(agent, &["list", "-o", "json"]);
    let v: Value = serde_json::from_str(&out).expect("json");
    for p in v["policies"].as_array().into_iter().flatten() {
        let name = format!(
            "{}/{}/{}",
            p["kind"].as_str().unwrap_or_default(),
            p["namespace"].as_str().unwrap_or_default(),
            p["name"].as_str().unwrap_or_default()
        );
        let (ok, out, err) = run_cli(agent, &["delete", &name]);
        assert!(ok, "delete {name}: {out}{err}");
    }
}

/// Probe, and re-probe with a longer timeout the cells that look blocked but should not be
/// (a busy 2-core machine can be slow to answer; a policy drop never answers).
fn measure(lab: &Lab, want: &Matrix) -> Matrix {
    let mut got = lab.probe_all();
    let retry: Vec<Probe> = got
        .iter()
        .filter(|(p, ok)| !**ok && want.get(*p) == Some(&true))
        .map(|(p, _)| p.clone())
        .collect();
    for p in retry {
        let ok = lab.probe_one(&p, Duration::from_secs(3));
        got.insert(p, ok);
    }
    got
}

fn diff(name: &str, want: &Matrix, got: &Matrix) -> Vec<String> {
    want.iter()
        .filter(|(p, w)| got.get(*p) != Some(*w))
        .map(|(p, w)| {
            format!(
                "{name}: {} -> {} {}/{:?}: want {}, got {}",
                p.from,
                p.to,
                p.port,
                p.proto,
                if *w { "reachable" } else { "blocked" },
                if *w { "blocked" } else { "reachable" }
            )
        })
        .collect()
}

type Truth = fn(&Probe) -> bool;

struct Scenario {
    name: &'static str,
    /// A hand-written expectation, checked against the evaluator's and the lab's.
    truth: Option<Truth>,
}

fn np(name: &str, ns: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}\n"
    )
}

fn scenarios() -> Vec<(Scenario, String)> {
    let s = |name: &'static str, truth: Option<Truth>, docs: Vec<String>| {
        (Scenario { name, truth }, docs.join("---\n"))
    };
    let fathom = |name: &str, ns: &str, spec: &str| {
        format!(
            "apiVersion: fathom.dev/v1alpha1\nkind: FathomNetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}\n"
        )
    };
    vec![
        s("default deny ingress", Some(|p| p.dst_ns() != "x"), vec![np("deny-ingress", "x", "  podSelector: {}\n  policyTypes: [Ingress]")]),
        s("default deny egress", Some(|p| p.src_ns() != "x"), vec![np("deny-egress", "x", "  podSelector: {}\n  policyTypes: [Egress]")]),
        s("default deny all", Some(|p| p.src_ns() != "x" && p.dst_ns() != "x"), vec![np("deny-all", "x", "  podSelector: {}\n  policyTypes: [Ingress, Egress]")]),
        s("allow all ingress over deny", Some(|_| true), vec![
            np("deny-ingress", "x", "  podSelector: {}\n  policyTypes: [Ingress]"),
            np("allow-all", "x", "  podSelector: {}\n  ingress: [{}]"),
        ]),
        s("allow all egress over deny", Some(|_| true), vec![
            np("deny-egress", "x", "  podSelector: {}\n  policyTypes: [Egress]"),
            np("allow-all-egress", "x", "  podSelector: {}\n  egress: [{}]\n  policyTypes: [Egress]"),
        ]),
        s("pod selector: x/a from x/b only", Some(|p| p.to != "x/a" || p.from == "x/b"), vec![
            np("a-from-b", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {pod: b}}}]"),
        ]),
        s("namespace selector: x/a from y", Some(|p| p.to != "x/a" || p.src_ns() == "y"), vec![
            np("a-from-y", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}}]"),
        ]),
        s("namespace matchExpressions NotIn", Some(|p| p.to != "x/a" || p.src_ns() == "z"), vec![
            np("a-not-from-xy", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [x, y]}]}}]"),
        ]),
        s("pod matchExpressions In", None, vec![
            np("a-from-bc", "x", "  podSelector: {matchExpressions: [{key: pod, operator: In, values: [a]}]}\n  ingress:\n  - from: [{podSelector: {matchExpressions: [{key: pod, operator: In, values: [b, c]}]}}]"),
        ]),
        s("pod AND namespace in one peer", Some(|p| p.to != "x/a" || p.from == "y/b"), vec![
            np("a-from-y-b", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}, podSelector: {matchLabels: {pod: b}}}]"),
        ]),
        s("pod OR namespace as two peers", Some(|p| p.to != "x/a" || p.src_ns() == "y" || p.from == "x/b"), vec![
            np("a-from-y-or-b", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}}, {podSelector: {matchLabels: {pod: b}}}]"),
        ]),
        s("port 80 TCP only", Some(|p| p.to != "x/a" || (p.port == 80 && p.proto == Proto::Tcp)), vec![
            np("a-tcp-80", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - ports: [{port: 80, protocol: TCP}]"),
        ]),
        s("named port serve-81-tcp", Some(|p| p.to != "x/a" || (p.port == 81 && p.proto == Proto::Tcp)), vec![
            np("a-named-81", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - ports: [{port: serve-81-tcp}]"),
        ]),
        s("named port serve-80-udp", Some(|p| p.to != "x/a" || (p.port == 80 && p.proto == Proto::Udp)), vec![
            np("a-named-udp", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - ports: [{port: serve-80-udp, protocol: UDP}]"),
        ]),
        s("endPort 80-81 TCP", Some(|p| p.dst_ns() != "x" || p.proto == Proto::Tcp), vec![
            np("x-tcp-range", "x", "  podSelector: {}\n  ingress:\n  - ports: [{port: 80, endPort: 81, protocol: TCP}]"),
        ]),
        s("UDP rule does not allow TCP", Some(|p| p.to != "x/a" || (p.port == 81 && p.proto == Proto::Udp)), vec![
            np("a-udp-81", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - ports: [{port: 81, protocol: UDP}]"),
        ]),
        s("egress port 80 only", Some(|p| p.from != "x/a" || p.port == 80), vec![
            np("a-egress-80", "x", "  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{port: 80, protocol: TCP}, {port: 80, protocol: UDP}]"),
        ]),
        s("egress to namespace y only", Some(|p| p.from != "x/a" || p.dst_ns() == "y"), vec![
            np("a-egress-y", "x", "  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}}]"),
        ]),
        s("egress named port", Some(|p| p.from != "x/a" || (p.port == 81 && p.proto == Proto::Udp)), vec![
            np("a-egress-named", "x", "  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{port: serve-81-udp, protocol: UDP}]"),
        ]),
        s("stacked ingress policies add up", Some(|p| p.to != "x/a" || p.src_ns() == "y" || p.port == 81), vec![
            np("a-from-y", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}}]"),
            np("a-81", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - ports: [{port: 81, protocol: TCP}, {port: 81, protocol: UDP}]"),
        ]),
        s("selector that selects nothing", Some(|_| true), vec![
            np("nobody", "x", "  podSelector: {matchLabels: {pod: d}}\n  policyTypes: [Ingress, Egress]"),
        ]),
        s("deny ingress in x and y", Some(|p| p.dst_ns() == "z"), vec![
            np("deny-x", "x", "  podSelector: {}\n  policyTypes: [Ingress]"),
            np("deny-y", "y", "  podSelector: {}\n  policyTypes: [Ingress]"),
        ]),
        s("all namespaces on port 81", Some(|p| p.dst_ns() != "x" || p.port == 81), vec![
            np("x-81-from-anywhere", "x", "  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {}}]\n    ports: [{port: 81, protocol: TCP}, {port: 81, protocol: UDP}]"),
        ]),
        s("pod selector alone means own namespace", Some(|p| p.dst_ns() != "x" || p.src_ns() == "x"), vec![
            np("x-from-x", "x", "  podSelector: {}\n  ingress:\n  - from: [{podSelector: {}}]"),
        ]),
        s("DoesNotExist selects no labelled pod", Some(|p| p.to != "x/a"), vec![
            np("a-from-unlabelled", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{podSelector: {matchExpressions: [{key: pod, operator: DoesNotExist}]}}]"),
        ]),
        s("egress policyTypes ignore ingress rules", Some(|p| p.from != "x/a"), vec![
            np("a-egress-none", "x", "  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  ingress: [{}]"),
        ]),
        s("ipBlock with except", None, vec![]),
        s("egress ipBlock", None, vec![]),
        s("fathom deny beats allow", Some(|p| p.dst_ns() != "x" || p.src_ns() != "y"), vec![
            fathom("x-open-not-y", "x", "  podSelector: {}\n  ingress:\n  - {}\n  - action: deny\n    from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}}]"),
        ]),
        s("fathom egress deny to z", Some(|p| p.src_ns() != "x" || p.dst_ns() != "z"), vec![
            fathom("x-not-to-z", "x", "  podSelector: {}\n  egress:\n  - action: deny\n    to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}}]"),
        ]),
        s("fathom deny-only policy does not isolate", Some(|p| !(p.to == "x/a" && p.port == 80)), vec![
            fathom("a-no-80", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - action: deny\n    ports: [{port: 80, protocol: TCP}, {port: 80, protocol: UDP}]"),
        ]),
        s("ingress and egress together", Some(|p| (p.to != "x/a" || p.src_pod() == "b") && (p.from != "x/a" || p.dst_pod() == "c")), vec![
            np("a-both", "x", "  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Ingress, Egress]\n  ingress:\n  - from: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: b}}}]\n  egress:\n  - to: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: c}}}]"),
        ]),
    ]
}

/// ipBlock scenarios need the lab's addresses.
fn ip_scenarios(lab: &Lab) -> Vec<(&'static str, String, Truth)> {
    let subnet = lab.state().ipv4_subnet.to_string();
    let yb = lab.pod("y/b").ipv4;
    let za = lab.pod("z/a").ipv4;
    vec![
        (
            "ipBlock with except",
            np(
                "a-from-cidr",
                "x",
                &format!("  podSelector: {{matchLabels: {{pod: a}}}}\n  ingress:\n  - from: [{{ipBlock: {{cidr: {subnet}, except: [{yb}/32]}}}}]"),
            ),
            |p| p.to != "x/a" || p.from != "y/b",
        ),
        (
            "egress ipBlock",
            np(
                "a-to-za",
                "x",
                &format!("  podSelector: {{matchLabels: {{pod: a}}}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{{ipBlock: {{cidr: {za}/32}}}}]"),
            ),
            |p| p.from != "x/a" || p.to == "z/a",
        ),
    ]
}

struct Run {
    dir: std::path::PathBuf,
    failures: Vec<String>,
    scenarios: usize,
}

impl Run {
    /// Apply `docs` (after removing what the previous scenario left), probe, compare.
    fn scenario(&mut self, lab: &Lab, agent: &Agent, name: &str, docs: &str, truth: Option<Truth>) {
        delete_all(agent);
        if !docs.is_empty() {
            apply(agent, &self.dir, &format!("s{}", self.scenarios), docs);
        }
        self.check(lab, name, docs, truth);
    }

    fn check(&mut self, lab: &Lab, name: &str, docs: &str, truth: Option<Truth>) {
        let t = Instant::now();
        self.scenarios += 1;
        let want = lab.expected(docs);
        if let Some(truth) = truth {
            let hand: Matrix = want.keys().map(|p| (p.clone(), truth(p))).collect();
            self.failures.extend(diff(
                &format!("{name} (evaluator vs hand-written truth)"),
                &hand,
                &want,
            ));
        }
        let got = measure(lab, &want);
        self.failures.extend(diff(name, &want, &got));
        eprintln!("scenario {:>2} {name}: {:?}", self.scenarios, t.elapsed());
    }
}

#[test]
fn conformance_matrix() {
    let _g = serial();
    let spec = LabSpec::from_yaml(SPEC).expect("spec");
    let guard =
        LabGuard::up_named(&spec, &fathom_lab::unique_name("pol")).expect("lab up (are we root?)");
    let state = guard.state().clone();
    let mut lab = Lab {
        _guard: guard,
        state,
    };
    lab.serve();
    let state_dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start_with(
        &lab._guard,
        &[
            "--web-address",
            "off",
            "--policy-state-dir",
            state_dir.path().to_str().expect("path"),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();

    // Baseline: without policies everything reaches everything.
    let all_open = lab.probe_all();
    let blocked: Vec<_> = all_open.iter().filter(|(_, ok)| !**ok).collect();
    assert!(
        blocked.is_empty(),
        "without policy: {blocked:?}\n{}",
        agent.log()
    );

    let mut run = Run {
        dir: dir.path().to_path_buf(),
        failures: Vec::new(),
        scenarios: 0,
    };
    let ip = ip_scenarios(&lab);
    for (sc, docs) in scenarios() {
        if docs.is_empty() {
            let (name, docs, truth) = ip
                .iter()
                .find(|(n, _, _)| *n == sc.name)
                .expect("ip scenario");
            run.scenario(&lab, &agent, name, docs, Some(*truth));
        } else {
            run.scenario(&lab, &agent, sc.name, &docs, sc.truth);
        }
    }

    // Policy update: same name, new content.
    let v1 = np("a-from-b", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {pod: b}}}]");
    let v2 = np("a-from-b", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {pod: c}}}]");
    run.scenario(
        &lab,
        &agent,
        "policy update (before)",
        &v1,
        Some(|p| p.to != "x/a" || p.from == "x/b"),
    );
    apply(&agent, dir.path(), "update", &v2);
    run.check(
        &lab,
        "policy update (after)",
        &v2,
        Some(|p| p.to != "x/a" || p.from == "x/c"),
    );

    // Delete stops enforcement.
    delete_all(&agent);
    run.check(&lab, "delete stops enforcement", "", Some(|_| true));

    // Pod relabel: x/b becomes pod: c, so "from pod: c" lets it in.
    run.scenario(
        &lab,
        &agent,
        "pod relabel (before)",
        &v2,
        Some(|p| p.to != "x/a" || p.from == "x/c"),
    );
    let g = generation(&agent);
    lab.rewrite_state(|st| {
        for p in &mut st.pods {
            if p.full_name() == "x/b" {
                p.labels.insert("pod".into(), "c".into());
            }
        }
    });
    wait_generation(&agent, g);
    run.check(
        &lab,
        "pod relabel (after)",
        &v2,
        Some(|p| p.to != "x/a" || p.from == "x/c" || p.from == "x/b"),
    );

    // Namespace relabel: z gets team=red; x/a admits team=red namespaces (v2 stays applied).
    let red = np("a-from-red", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {team: red}}}]");
    apply(&agent, dir.path(), "red", &red);
    let both = format!("{v2}---\n{red}");
    run.check(
        &lab,
        "namespace relabel (before)",
        &both,
        Some(|p| p.to != "x/a" || p.from == "x/c" || p.from == "x/b"),
    );
    let g = generation(&agent);
    lab.rewrite_state(|st| {
        for ns in &mut st.namespaces {
            if ns.name == "z" {
                ns.labels.insert("team".into(), "red".into());
            }
        }
        for p in &mut st.pods {
            if p.namespace == "z" {
                p.namespace_labels.insert("team".into(), "red".into());
            }
        }
    });
    wait_generation(&agent, g);
    run.check(
        &lab,
        "namespace relabel (after)",
        &both,
        Some(|p| p.to != "x/a" || p.src_ns() == "z" || p.from == "x/c" || p.from == "x/b"),
    );

    // Audit: a default-deny in audit mode drops nothing and reports AUDIT verdicts.
    let audit = "apiVersion: fathom.dev/v1alpha1\nkind: FathomNetworkPolicy\nmetadata: {name: y-lockdown-trial, namespace: y}\nspec:\n  mode: audit\n  podSelector: {}\n  policyTypes: [Ingress]\n";
    run.scenario(
        &lab,
        &agent,
        "audit mode passes traffic",
        audit,
        Some(|_| true),
    );
    let recs = agent.wait_for(
        &["--type", "policy-verdict", "--verdict", "AUDIT"],
        "AUDIT verdicts",
        |r| !r.is_empty(),
    );
    for r in &recs {
        assert_eq!(r["verdict"], "AUDIT", "{r}");
        assert_eq!(r["direction"], "ingress", "{r}");
        assert_eq!(r["policies"][0]["name"], "y-lockdown-trial", "{r}");
        assert_eq!(r["destination"]["namespace"], "y", "{r}");
    }
    // Earlier scenarios dropped connections and said why.
    let dropped = agent.observe(&[
        "--type",
        "policy-verdict",
        "--verdict",
        "DROPPED",
        "--last",
        "5000",
    ]);
    assert!(!dropped.is_empty(), "no DROPPED verdicts recorded");
    assert!(
        dropped.iter().any(|r| r["reason"] == "default deny"),
        "no default-deny verdict among {} drops",
        dropped.len()
    );
    let table = Command::new(fathom())
        .args([
            "observe",
            "--type",
            "policy-verdict",
            "--verdict",
            "AUDIT",
            "--print-policy-names",
            "--last",
            "1",
            "--socket",
        ])
        .arg(&agent.socket)
        .output()
        .expect("observe");
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("y/y-lockdown-trial"), "{table}");

    // Explain answers with the rule that decides.
    let (ok, out, err) = run_cli(&agent, &["explain", "x/b", "y/a", "80/tcp", "-o", "json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["verdict"]["action"], "Audit", "{v}");
    assert_eq!(v["verdict"]["ingress"]["reason"], "AuditDefaultDeny", "{v}");

    eprintln!(
        "policy conformance: {} scenarios x {} probes in {:?}",
        run.scenarios,
        all_probes(&lab.pods()).len(),
        started.elapsed()
    );
    assert!(
        run.failures.is_empty(),
        "{} mismatches:\n{}\nagent log:\n{}",
        run.failures.len(),
        run.failures.join("\n"),
        agent.log()
    );
    assert!(run.scenarios >= 30, "only {} scenarios", run.scenarios);
}

fn wait_generation(agent: &Agent, after: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while generation(agent) <= after {
        assert!(
            Instant::now() < deadline,
            "the agent did not recompile after the inventory change:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Malformed documents, each with the exact reason it must be refused for (after the file's
/// path): nothing may change in the kernel, and the applied policy must survive a restart.
const BAD_INPUT: &[(&str, &str, &str)] = &[
    (
        "unknown-field",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - form: []\n",
        "document 1 (NetworkPolicy x/web): spec.ingress[0].form: unknown field (expected one of: from, ports)",
    ),
    (
        "no-podselector",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec: {ingress: []}\n",
        "document 1 (NetworkPolicy x/web): spec.podSelector: required field is missing (use {} to select every pod)",
    ),
    (
        "host-bits",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.1.2.3/16}\n",
        "document 1 (NetworkPolicy x/web): spec.ingress[0].from[0].ipBlock.cidr: 10.1.2.3/16 has host bits set (did you mean 10.1.0.0/16?)",
    ),
    (
        "endport-below",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 443}, {port: 80, endPort: 70}]\n",
        "document 1 (NetworkPolicy x/allow-web): spec.ingress[0].ports[1].endPort: 70 is below port 80",
    ),
    (
        "bad-operator",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector:\n    matchExpressions: [{key: app, operator: in, values: [a]}]\n",
        "document 1 (NetworkPolicy x/web): spec.podSelector.matchExpressions[0].operator: unsupported operator \"in\" (expected In, NotIn, Exists or DoesNotExist)",
    ),
    (
        "label-value-number",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector:\n    matchLabels: {version: 1}\n",
        "document 1 (NetworkPolicy x/web): spec.podSelector.matchLabels.version: expected a string, found a number",
    ),
    (
        "fathom-field-in-k8s",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - action: deny\n",
        "document 1 (NetworkPolicy x/web): spec.ingress[0].action: unknown field (expected one of: from, ports); \"action\" is a FathomNetworkPolicy field",
    ),
    (
        "bad-kind",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {}\n",
        "document 1 (Pod default/web): kind: unsupported kind \"Pod\" (expected NetworkPolicy, FathomNetworkPolicy or List)",
    ),
    (
        "second-document-bad",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: fine, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 0}]\n",
        "document 2 (NetworkPolicy x/web): spec.ingress[0].ports[0].port",
    ),
];

fn maps(agent: &Agent) -> Value {
    let (ok, out, err) = run_cli(agent, &["maps", "-o", "json"]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).expect("json")
}

#[test]
fn bad_input_changes_nothing_and_policies_survive_a_restart() {
    let _g = serial();
    let lab = Lab::two_pods("polbad");
    let state_dir = tempfile::tempdir().expect("tempdir");
    let args = [
        "--web-address",
        "off",
        "--policy-state-dir",
        state_dir.path().to_str().expect("path"),
    ];
    let agent = Agent::start_with(&lab._guard, &args);
    let dir = tempfile::tempdir().expect("tempdir");
    let good = np(
        "a-from-nobody",
        "x",
        "  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Ingress]",
    );
    apply(&agent, dir.path(), "good", &good);
    let probe = b_to_a(80, Proto::Tcp);
    assert!(
        !lab.probe_one(&probe, PROBE_TIMEOUT),
        "x/a must be isolated"
    );
    let before = maps(&agent);
    let gen = generation(&agent);
    assert!(
        before["policy_rules0"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
            || before["policy_rules1"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
    );

    let mut checked = 0;
    for (name, yaml, reason) in BAD_INPUT {
        let f = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&f, yaml).expect("write");
        // Alone, and together with a valid file: all or nothing.
        let ok_file = dir.path().join("also-valid.yaml");
        std::fs::write(
            &ok_file,
            np(
                "would-be-new",
                "x",
                "  podSelector: {}\n  policyTypes: [Egress]",
            ),
        )
        .expect("write");
        for files in [vec![&f], vec![&ok_file, &f]] {
            let mut args = vec!["apply"];
            for file in &files {
                args.push("-f");
                args.push(file.to_str().expect("path"));
            }
            let (ok, out, err) = run_cli(&agent, &args);
            assert!(!ok, "{name} was accepted: {out}");
            let want = format!("{}: {reason}", f.display());
            assert!(err.contains(&want), "{name}: want {want:?} in:\n{err}");
            assert!(err.contains("nothing changed"), "{err}");
            assert_eq!(maps(&agent), before, "{name} changed the kernel maps");
            assert_eq!(generation(&agent), gen, "{name} bumped the generation");
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * BAD_INPUT.len());
    let (_, out, _) = run_cli(&agent, &["list", "-o", "json"]);
    let listed: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        listed["policies"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    // Deleting what is not there is refused too.
    let (ok, _, err) = run_cli(&agent, &["delete", "no-such-policy"]);
    assert!(
        !ok && err.contains("no applied policy named \"no-such-policy\""),
        "{err}"
    );

    // Restart: the applied policy comes back from the state dir and is enforced again.
    drop(agent);
    let agent = Agent::start_with(&lab._guard, &args);
    let (_, out, _) = run_cli(&agent, &["list", "-o", "json"]);
    let relisted: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(relisted["policies"], listed["policies"], "{relisted}");
    assert!(
        !lab.probe_one(&probe, PROBE_TIMEOUT),
        "x/a must still be isolated after a restart"
    );
    let (ok, out, _) = run_cli(&agent, &["get", "x/a-from-nobody"]);
    assert!(ok && out.contains("a-from-nobody"), "{out}");
    let (ok, _, err) = run_cli(&agent, &["delete", "x/a-from-nobody"]);
    assert!(ok, "{err}");
    assert!(
        lab.probe_one(&probe, Duration::from_secs(3)),
        "delete must open x/a again"
    );
}

/// The program's own counters, as `policy list` shows them.
fn stat(agent: &Agent, name: &str) -> u64 {
    let (ok, out, err) = run_cli(agent, &["list", "-o", "json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    v["stats"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

/// Pin files of one interface's links under a policy pin root.
fn link_pins(root: &std::path::Path, ifindex: u32) -> Vec<std::path::PathBuf> {
    ["from-endpoint", "to-endpoint"]
        .iter()
        .map(|d| root.join("links").join(format!("{ifindex}-{d}")))
        .filter(|p| p.exists())
        .collect()
}

fn wait_until(what: &str, agent: &Agent, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Enforcement outlives the agent: a deny stays enforced while no agent runs (after SIGTERM
/// and after SIGKILL) and allowed traffic still passes; the next agent re-adopts the pinned
/// state (same policy, same identities, counters continuing exactly), changes take effect
/// through it, pins of interfaces that went away are removed, and `fathom uninstall` ends
/// enforcement. Every denied probe is one UDP datagram, so the drop counter is exact.
#[test]
fn enforcement_survives_agent_restarts_and_uninstall_removes_it() {
    let _g = serial();
    let lab = Lab::two_pods("polpin");
    // Two more labs, each with one pod, taken down while an agent runs and while none does.
    let side_spec = |ns: &str| {
        LabSpec::from_yaml(&format!(
            "namespaces:\n- name: {ns}\n  pods:\n  - {{name: d, labels: {{pod: d}}}}\n"
        ))
        .expect("spec")
    };
    let side_live =
        LabGuard::up_named(&side_spec("w"), &fathom_lab::unique_name("polpinw")).expect("lab up");
    let side_idle =
        LabGuard::up_named(&side_spec("v"), &fathom_lab::unique_name("polpinv")).expect("lab up");
    let live_idx = side_live.state().pods[0].host_ifindex;
    let idle_idx = side_idle.state().pods[0].host_ifindex;
    let (live_name, idle_name) = (
        side_live.state().name.clone(),
        side_idle.state().name.clone(),
    );

    let pin_root = support::unique_pin_root("polpin");
    let _pins = support::PolicyPins(pin_root.clone());
    let state_dir = tempfile::tempdir().expect("tempdir");
    let args = [
        "--web-address",
        "off",
        "--lab",
        &lab.state().name,
        "--lab",
        &live_name,
        "--lab",
        &idle_name,
        "--policy-state-dir",
        state_dir.path().to_str().expect("path"),
        "--policy-pin-root",
        pin_root.to_str().expect("path"),
    ];
    let udp = |port| b_to_a(port, Proto::Udp);
    let tcp80 = b_to_a(80, Proto::Tcp);
    // One denied datagram (one drop), and the other UDP port and TCP 80 pass.
    let check = |what: &str, denied: u16| {
        let allowed = if denied == 81 { 80 } else { 81 };
        assert!(
            !lab.probe_one(&udp(denied), PROBE_TIMEOUT),
            "{what}: UDP {denied} to x/a must be denied"
        );
        assert!(
            lab.probe_one(&udp(allowed), Duration::from_secs(3)),
            "{what}: UDP {allowed} to x/a must pass"
        );
        assert!(
            lab.probe_one(&tcp80, Duration::from_secs(3)),
            "{what}: TCP 80 to x/a must pass"
        );
    };
    let deny = |port: u16| {
        format!(
            "apiVersion: fathom.dev/v1alpha1\nkind: FathomNetworkPolicy\nmetadata: {{name: a-deny, namespace: x}}\nspec:\n  podSelector: {{matchLabels: {{pod: a}}}}\n  ingress:\n  - action: deny\n    ports: [{{port: {port}, protocol: UDP}}]\n"
        )
    };
    let docs = tempfile::tempdir().expect("tempdir");
    let a_idx = lab.pod("x/a").host_ifindex;
    let readopting_agent = |gen: u64, endpoints: usize| {
        let agent = Agent::start_with(&lab._guard, &args);
        let want = format!("re-adopted policy state generation {gen}, {endpoints} endpoints");
        assert!(
            agent.log().contains(&want),
            "want {want:?} in:\n{}",
            agent.log()
        );
        agent
    };

    let mut agent = Agent::start_with(&lab._guard, &args);
    assert!(
        agent.log().contains("no pinned policy state"),
        "{}",
        agent.log()
    );
    apply(&agent, docs.path(), "deny81", &deny(81));
    check("agent 1", 81);
    assert_eq!(stat(&agent, "dropped"), 1);
    let gen = generation(&agent);
    for m in fathom_bpf::policy::PINNED_MAPS {
        assert!(pin_root.join(m).exists(), "{m} not pinned");
    }
    for idx in [a_idx, live_idx, idle_idx] {
        assert_eq!(link_pins(&pin_root, idx).len(), 2, "links of ifindex {idx}");
    }

    // SIGTERM: a clean exit leaves enforcement in place.
    let st = agent.stop(libc::SIGTERM).expect("agent exit");
    assert!(st.success(), "agent exit {st}:\n{}", agent.log());
    assert!(
        agent.log().contains("policy enforcement left in place"),
        "{}",
        agent.log()
    );
    let links = fathom_bpf::policy::policy_links_on(a_idx);
    assert_eq!(
        links.len(),
        2,
        "policy links on x/a's interface without an agent"
    );
    check("no agent after SIGTERM", 81);
    drop(agent);

    let agent = readopting_agent(gen, 4);
    let (_, out, _) = run_cli(&agent, &["list", "-o", "json"]);
    let listed: Value = serde_json::from_str(&out).expect("json");
    let names: Vec<&str> = listed["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["a-deny"], "{listed}");
    // The new agent's programs went into the same links (bpf_link_update), none was added
    // next to them.
    let now = fathom_bpf::policy::policy_links_on(a_idx);
    let ids = |l: &[(u32, u32)]| l.iter().map(|(link, _)| *link).collect::<Vec<_>>();
    assert_eq!(ids(&now), ids(&links), "the same links");
    for ((_, old), (_, new)) in links.iter().zip(&now) {
        assert_ne!(old, new, "the links still run the stopped agent's program");
    }
    // The stored policy was compiled again into the standby slot and flipped to: with the
    // identities kept in the state dir, it is the very same map content as before.
    assert_eq!(generation(&agent), gen + 1);
    let m = maps(&agent);
    for pair in ["policy_rules", "policy_ipcache", "policy_ipcache_exact"] {
        assert_eq!(
            m[format!("{pair}0")],
            m[format!("{pair}1")],
            "{pair}: the restarted agent's identities differ"
        );
    }
    assert_eq!(stat(&agent, "dropped"), 2, "counters continue");
    check("agent 2", 81);
    assert_eq!(stat(&agent, "dropped"), 3);
    // A change through the new agent takes effect.
    apply(&agent, docs.path(), "deny80", &deny(80));
    check("agent 2 after a change", 80);
    assert_eq!(stat(&agent, "dropped"), 4);
    // A pod gone while the agent runs: its links and pins go on the next reconcile.
    drop(side_live);
    wait_until("the gone pod's pins are removed", &agent, || {
        link_pins(&pin_root, live_idx).is_empty()
    });
    let gen = generation(&agent);

    // SIGKILL: no chance to clean up, same result.
    let mut agent = agent;
    agent.stop(libc::SIGKILL);
    check("no agent after SIGKILL", 80);
    drop(agent);
    // A pod gone while no agent runs: the next agent removes its pins at start.
    drop(side_idle);

    let agent = readopting_agent(gen, 2);
    assert!(link_pins(&pin_root, idle_idx).is_empty());
    assert_eq!(
        stat(&agent, "dropped"),
        5,
        "counters continue after SIGKILL"
    );
    check("agent 3", 80);
    assert_eq!(stat(&agent, "dropped"), 6);
    drop(agent);

    // Uninstall (the shield's root is one nobody uses): pins and links go, traffic flows.
    let out = Command::new(fathom())
        .args(["uninstall", "--policy-pin-root"])
        .arg(&pin_root)
        .arg("--shield-pin-root")
        .arg(support::unique_pin_root("polpin-shield"))
        .output()
        .expect("uninstall");
    assert!(out.status.success(), "{out:?}");
    assert!(!pin_root.exists(), "uninstall removes the policy pins");
    assert_eq!(
        fathom_bpf::policy::policy_links_on(a_idx),
        Vec::<(u32, u32)>::new(),
        "uninstall detaches the policy programs from x/a's interface"
    );
    assert!(
        lab.probe_one(&udp(80), Duration::from_secs(3)),
        "UDP 80 passes once uninstalled"
    );
}

/// A pin root that cannot hold pins (not on bpffs): the agent says so and enforces unpinned,
/// and its enforcement ends with it.
#[test]
fn an_unpinnable_root_leaves_the_agent_enforcing_unpinned() {
    let _g = serial();
    let lab = Lab::two_pods("polnopin");
    let tmp = tempfile::tempdir().expect("tempdir");
    let not_bpffs = tmp.path().join("pins");
    let state_dir = tmp.path().join("state");
    let agent = Agent::start_with(
        &lab._guard,
        &[
            "--web-address",
            "off",
            "--policy-state-dir",
            state_dir.to_str().expect("path"),
            "--policy-pin-root",
            not_bpffs.to_str().expect("path"),
        ],
    );
    let want = format!(
        "policy state cannot be pinned under {} ({} is not on a BPF filesystem",
        not_bpffs.display(),
        tmp.path().display()
    );
    assert!(
        agent.log().contains(&want),
        "want {want:?} in:\n{}",
        agent.log()
    );
    let docs = tempfile::tempdir().expect("tempdir");
    apply(
        &agent,
        docs.path(),
        "isolate-a",
        &np(
            "isolate-a",
            "x",
            "  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Ingress]",
        ),
    );
    let probe = b_to_a(80, Proto::Tcp);
    assert!(!lab.probe_one(&probe, PROBE_TIMEOUT), "enforced unpinned");
    let (_, out, _) = run_cli(&agent, &["list", "-o", "json"]);
    let listed: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(listed["pin_root"], Value::Null, "{listed}");
    let a_idx = lab.pod("x/a").host_ifindex;
    drop(agent);
    assert!(
        !not_bpffs.exists(),
        "nothing created at the unpinnable root"
    );
    assert_eq!(
        fathom_bpf::policy::policy_links_on(a_idx),
        Vec::<(u32, u32)>::new()
    );
    assert!(
        lab.probe_one(&probe, Duration::from_secs(3)),
        "unpinned enforcement ends with the agent"
    );
}
