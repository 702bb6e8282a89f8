//! Shared fixture: a small cluster and helpers that ask both the evaluator and the compiled
//! datapath, insisting that they agree.
#![allow(dead_code)]

use std::net::IpAddr;

use fathom_policy::{
    compile, evaluate, load_str, CompileOptions, Endpoint, EndpointId, Endpoints,
    IdentityAllocator, Labels, LoadOptions, Packet, Peer, PolicySet, PortProtocol, Verdict, L4,
};

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("bad ip {s}"))
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub const XA: Peer = Peer::Endpoint(EndpointId(1));
pub const XB: Peer = Peer::Endpoint(EndpointId(2));
pub const YA: Peer = Peer::Endpoint(EndpointId(3));
pub const YC: Peer = Peer::Endpoint(EndpointId(4));
pub const HOST_IP: &str = "10.0.9.9";

/// Namespaces x {ns: x} and y {ns: y, env: prod}; pods
/// x/a {pod: a} 10.0.0.1 (http = TCP 80, dns = UDP 53), x/b {pod: b} 10.0.0.2 (http = TCP 8080),
/// y/a {pod: a} 10.0.1.1, y/c {pod: c, app: db} 10.0.1.3 and fd00::3; the host is 10.0.9.9.
pub fn cluster() -> Endpoints {
    let mut e = Endpoints::new();
    e.add_namespace("x", labels(&[("ns", "x")])).expect("ns");
    e.add_namespace("y", labels(&[("ns", "y"), ("env", "prod")]))
        .expect("ns");
    e.add_host_ip(ip(HOST_IP)).expect("host");
    let pods = [
        Endpoint::new(1, "x", "a")
            .label("pod", "a")
            .ip(ip("10.0.0.1"))
            .port("http", 80, PortProtocol::Tcp)
            .port("dns", 53, PortProtocol::Udp),
        Endpoint::new(2, "x", "b")
            .label("pod", "b")
            .ip(ip("10.0.0.2"))
            .port("http", 8080, PortProtocol::Tcp),
        Endpoint::new(3, "y", "a")
            .label("pod", "a")
            .ip(ip("10.0.1.1")),
        Endpoint::new(4, "y", "c")
            .label("pod", "c")
            .label("app", "db")
            .ip(ip("10.0.1.3"))
            .ip(ip("fd00::3")),
    ];
    for p in pods {
        e.add_endpoint(p).expect("endpoint");
    }
    e
}

pub fn policies(yaml: impl AsRef<str>) -> PolicySet {
    load_str("test.yaml", yaml.as_ref(), &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

pub fn tcp(port: u16) -> L4 {
    L4::Tcp { dport: port }
}

pub fn udp(port: u16) -> L4 {
    L4::Udp { dport: port }
}

/// The evaluator's verdict, after checking that the compiled datapath gives the same one.
pub fn verdict_in(set: &PolicySet, eps: &Endpoints, src: Peer, dst: Peer, l4: L4) -> Verdict {
    let packet = Packet::new(src, dst, l4);
    let v = evaluate(set, eps, &packet).expect("evaluate");
    let compiled = compile(
        set,
        eps,
        &mut IdentityAllocator::new(),
        &CompileOptions::default(),
    )
    .expect("compile");
    let d = compiled.evaluate(eps, &packet).expect("datapath");
    assert_eq!(v, d, "evaluator and datapath disagree on {packet:?}");
    v
}

pub fn verdict(set: &PolicySet, src: Peer, dst: Peer, l4: L4) -> Verdict {
    verdict_in(set, &cluster(), src, dst, l4)
}

pub const K8S: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n";
pub const FATHOM: &str = "apiVersion: fathom.dev/v1alpha1\nkind: FathomNetworkPolicy\n";
