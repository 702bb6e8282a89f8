//! Random policies, inventories and packets, shared by the user-space agreement test and the
//! kernel test in fathom-bpf (`tests/policy_kernel_agreement.rs` includes this file by path).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use fathom_policy::{Endpoint, EndpointId, Endpoints, Peer, PortProtocol, L4};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Value};

pub const LABEL_KEYS: &[&str] = &["app", "tier", "pod"];
pub const LABEL_VALUES: &[&str] = &["a", "b", "c"];
pub const EXPR_KEYS: &[&str] = &[
    "app",
    "tier",
    "pod",
    "ns",
    "env",
    "kubernetes.io/metadata.name",
];
pub const EXPR_VALUES: &[&str] = &["a", "b", "x", "y", "prod"];

/// Pod labels: mostly a few fixed sets, so that pods often share labels (and must then be
/// told apart by derived identity labels), sometimes random.
pub fn label_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    let fixed: &[&[(&str, &str)]] = &[
        &[],
        &[("app", "a")],
        &[("app", "b")],
        &[("app", "a"), ("tier", "b")],
        &[("pod", "a")],
    ];
    prop_oneof![
        3 => select(fixed).prop_map(|pairs| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        1 => prop::collection::btree_map(
            select(LABEL_KEYS).prop_map(str::to_string),
            select(LABEL_VALUES).prop_map(str::to_string),
            0..3
        ),
    ]
}

pub fn requirement() -> impl Strategy<Value = Value> {
    (select(EXPR_KEYS), 0..4usize, prop::collection::btree_set(select(EXPR_VALUES), 1..3)).prop_map(|(key, op, values)| {
        let op = ["In", "NotIn", "Exists", "DoesNotExist"][op];
        if op == "In" || op == "NotIn" {
            json!({"key": key, "operator": op, "values": values.into_iter().collect::<Vec<_>>()})
        } else {
            json!({"key": key, "operator": op})
        }
    })
}

pub fn selector() -> impl Strategy<Value = Value> {
    // Often `{}`, so that policies select pods and peers often enough to matter.
    prop_oneof![2 => Just(json!({})), 3 => random_selector()]
}

pub fn random_selector() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_map(select(EXPR_KEYS), select(EXPR_VALUES), 0..2),
        prop::collection::vec(requirement(), 0..2),
    )
        .prop_map(|(labels, exprs)| {
            let mut m = serde_json::Map::new();
            if !labels.is_empty() {
                m.insert("matchLabels".into(), json!(labels));
            }
            if !exprs.is_empty() {
                m.insert("matchExpressions".into(), Value::Array(exprs));
            }
            Value::Object(m)
        })
}

pub const BLOCKS: &[(&str, &[&str])] = &[
    ("10.0.0.0/8", &[]),
    ("10.0.0.0/8", &["10.0.0.0/24"]),
    ("10.0.0.0/8", &["10.0.1.0/24", "10.0.0.2/32"]),
    ("10.0.0.0/24", &["10.0.0.2/32"]),
    ("10.0.1.0/24", &[]),
    ("10.0.0.1/32", &[]),
    ("0.0.0.0/0", &[]),
    ("0.0.0.0/0", &["10.0.0.0/8"]),
    ("192.0.2.0/24", &[]),
    ("fd00::/64", &[]),
    ("fd00::/64", &["fd00::3/128"]),
    ("::/0", &[]),
];

pub fn peer() -> impl Strategy<Value = Value> {
    prop_oneof![
        selector().prop_map(|s| json!({"podSelector": s})),
        selector().prop_map(|s| json!({"namespaceSelector": s})),
        (selector(), selector())
            .prop_map(|(p, n)| json!({"podSelector": p, "namespaceSelector": n})),
        select(BLOCKS).prop_map(|(cidr, except)| {
            if except.is_empty() {
                json!({"ipBlock": {"cidr": cidr}})
            } else {
                json!({"ipBlock": {"cidr": cidr, "except": except}})
            }
        }),
    ]
}

pub fn port() -> impl Strategy<Value = Value> {
    let proto = select(&[None, Some("TCP"), Some("UDP"), Some("SCTP")][..]);
    let spec = prop_oneof![
        1 => Just(json!({})),
        1 => select(&[53u16, 80, 443, 8080][..]).prop_map(|p| json!({"port": p})),
        1 => select(&[(80u16, 90u16), (1, 1024), (8000, 8080), (53, 53)][..]).prop_map(|(a, b)| json!({"port": a, "endPort": b})),
        2 => select(&["http", "dns"][..]).prop_map(|n| json!({"port": n})),
    ];
    (proto, spec).prop_map(|(proto, mut spec)| {
        if let (Some(p), Value::Object(m)) = (proto, &mut spec) {
            m.insert("protocol".into(), json!(p));
        }
        spec
    })
}

pub fn icmp() -> impl Strategy<Value = Value> {
    (
        select(&["IPv4", "IPv6"][..]),
        select(&[0u8, 8, 128][..]),
        select(&[None, Some(0u8), Some(1)][..]),
    )
        .prop_map(|(f, t, c)| match c {
            Some(c) => json!({"family": f, "type": t, "code": c}),
            None => json!({"family": f, "type": t}),
        })
}

#[derive(Debug, Clone)]
pub struct RawRule {
    pub deny: bool,
    pub peers: Option<Vec<Value>>,
    pub ports: Option<Vec<Value>>,
    pub icmps: Option<Vec<Value>>,
}

pub fn rule() -> impl Strategy<Value = RawRule> {
    (
        prop::bool::weighted(0.3),
        prop::option::weighted(0.7, prop::collection::vec(peer(), 0..3)),
        prop::option::weighted(0.6, prop::collection::vec(port(), 0..3)),
        prop::option::weighted(0.2, prop::collection::vec(icmp(), 1..3)),
    )
        .prop_map(|(deny, peers, ports, icmps)| RawRule {
            deny,
            peers,
            ports,
            icmps,
        })
}

#[derive(Debug, Clone)]
pub struct RawPolicy {
    pub fathom: bool,
    pub audit: bool,
    pub namespace: &'static str,
    pub selector: Value,
    pub types: Option<Vec<&'static str>>,
    pub ingress: Option<Vec<RawRule>>,
    pub egress: Option<Vec<RawRule>>,
}

pub fn policy() -> impl Strategy<Value = RawPolicy> {
    (
        prop::bool::ANY,
        prop::bool::weighted(0.3),
        select(&["x", "y"][..]),
        selector(),
        select(vec![
            None,
            Some(vec!["Ingress"]),
            Some(vec!["Egress"]),
            Some(vec!["Ingress", "Egress"]),
        ]),
        prop::option::weighted(0.7, prop::collection::vec(rule(), 0..3)),
        prop::option::weighted(0.7, prop::collection::vec(rule(), 0..3)),
    )
        .prop_map(
            |(fathom, audit, namespace, selector, types, ingress, egress)| RawPolicy {
                fathom,
                audit,
                namespace,
                selector,
                types,
                ingress,
                egress,
            },
        )
}

pub fn rule_json(r: &RawRule, fathom: bool, peers_key: &str, may_allow: bool) -> Value {
    let mut m = serde_json::Map::new();
    if let Some(p) = &r.peers {
        m.insert(peers_key.into(), Value::Array(p.clone()));
    }
    if let Some(p) = &r.ports {
        m.insert("ports".into(), Value::Array(p.clone()));
    }
    if fathom {
        // A Fathom allow rule in a direction its policyTypes leave out is invalid: make it a deny.
        m.insert(
            "action".into(),
            json!(if r.deny || !may_allow {
                "deny"
            } else {
                "allow"
            }),
        );
        if let Some(i) = &r.icmps {
            m.insert("icmps".into(), Value::Array(i.clone()));
        }
    }
    Value::Object(m)
}

pub fn policy_json(i: usize, p: &RawPolicy) -> Value {
    let mut spec = serde_json::Map::new();
    spec.insert("podSelector".into(), p.selector.clone());
    if let Some(t) = &p.types {
        spec.insert("policyTypes".into(), json!(t));
    }
    let may = |d: &str| p.types.as_ref().is_none_or(|t| t.contains(&d));
    if let Some(rules) = &p.ingress {
        let v: Vec<Value> = rules
            .iter()
            .map(|r| rule_json(r, p.fathom, "from", may("Ingress")))
            .collect();
        spec.insert("ingress".into(), Value::Array(v));
    }
    if let Some(rules) = &p.egress {
        let v: Vec<Value> = rules
            .iter()
            .map(|r| rule_json(r, p.fathom, "to", may("Egress")))
            .collect();
        spec.insert("egress".into(), Value::Array(v));
    }
    let (api, kind) = if p.fathom {
        spec.insert(
            "mode".into(),
            json!(if p.audit { "audit" } else { "enforce" }),
        );
        ("fathom.dev/v1alpha1", "FathomNetworkPolicy")
    } else {
        ("networking.k8s.io/v1", "NetworkPolicy")
    };
    json!({"apiVersion": api, "kind": kind, "metadata": {"name": format!("p{i}"), "namespace": p.namespace}, "spec": spec})
}

pub const POD_IPS: &[&str] = &[
    "10.0.0.1",
    "10.0.0.2",
    "10.0.1.1",
    "10.0.1.2",
    "192.0.2.5",
    "10.0.0.3",
];
pub const EXTERNAL_IPS: &[&str] = &[
    "10.0.0.200",
    "10.0.1.77",
    "192.0.2.9",
    "8.8.8.8",
    "fd00::99",
    "2001:db8::1",
    "10.0.9.9",
];

#[derive(Debug, Clone)]
pub struct RawPod {
    pub namespace: &'static str,
    pub labels: BTreeMap<String, String>,
    pub second_ip: bool,
    pub http: Option<(u16, bool)>,
    pub dns: bool,
}

pub fn pod() -> impl Strategy<Value = RawPod> {
    (
        select(&["x", "y"][..]),
        label_map(),
        prop::bool::weighted(0.3),
        prop::option::weighted(0.8, (select(&[80u16, 8080][..]), prop::bool::weighted(0.8))),
        prop::bool::ANY,
    )
        .prop_map(|(namespace, labels, second_ip, http, dns)| RawPod {
            namespace,
            labels,
            second_ip,
            http,
            dns,
        })
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("{s}"))
}

pub fn inventory(pods: &[RawPod], env: &str) -> Endpoints {
    let mut eps = Endpoints::new();
    let labels = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    eps.add_namespace("x", labels(&[("ns", "x")])).expect("ns");
    eps.add_namespace("y", labels(&[("ns", "y"), ("env", env)]))
        .expect("ns");
    eps.add_host_ip(ip("10.0.9.9")).expect("host");
    for (i, p) in pods.iter().enumerate() {
        let n = u32::try_from(i + 1).expect("small");
        let mut ep = Endpoint::new(n, p.namespace, &format!("pod{n}")).ip(ip(POD_IPS[i]));
        ep.labels = p.labels.clone();
        if p.second_ip {
            ep = ep.ip(ip(&format!("fd00::{n}")));
        }
        if let Some((port, tcp)) = p.http {
            ep = ep.port(
                "http",
                port,
                if tcp {
                    PortProtocol::Tcp
                } else {
                    PortProtocol::Udp
                },
            );
        }
        if p.dns {
            ep = ep.port("dns", 53, PortProtocol::Udp);
        }
        eps.add_endpoint(ep).expect("endpoint");
    }
    eps
}

pub fn side(pods: usize) -> impl Strategy<Value = Peer> {
    prop_oneof![
        (1..=pods).prop_map(|i| Peer::Endpoint(EndpointId(u32::try_from(i).unwrap_or(1)))),
        (0..pods).prop_map(|i| Peer::Ip(ip(POD_IPS[i]))),
        select(EXTERNAL_IPS).prop_map(|s| Peer::Ip(ip(s))),
    ]
}

pub fn l4() -> impl Strategy<Value = L4> {
    // The pods' own ports (53, 80, 8080) come up more often than the others.
    let ports = select(&[53u16, 53, 80, 80, 8080, 8080, 85, 90, 443, 1000, 8000, 9000][..]);
    prop_oneof![
        ports.clone().prop_map(|dport| L4::Tcp { dport }),
        ports.clone().prop_map(|dport| L4::Udp { dport }),
        ports.prop_map(|dport| L4::Sctp { dport }),
        (select(&[0u8, 8][..]), 0..2u8).prop_map(|(icmp_type, code)| L4::Icmp { icmp_type, code }),
        (select(&[128u8, 8][..]), 0..2u8)
            .prop_map(|(icmp_type, code)| L4::Icmpv6 { icmp_type, code }),
        Just(L4::Other(47)),
    ]
}

/// Policies, pods, the `env` label of namespace y, and packets.
pub type Scenario = (
    Vec<RawPolicy>,
    Vec<RawPod>,
    &'static str,
    Vec<(Peer, Peer, L4)>,
);

pub fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(policy(), 1..5),
        prop::collection::vec(pod(), 1..=POD_IPS.len()),
        select(&["prod", "dev"][..]),
    )
        .prop_flat_map(|(policies, pods, env)| {
            let n = pods.len();
            let packets = prop::collection::vec((side(n), side(n), l4()), 40);
            (Just(policies), Just(pods), Just(env), packets)
        })
}
