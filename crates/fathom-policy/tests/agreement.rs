//! The property the kernel will be held to: looking packets up in the compiled entries (the
//! kernel's algorithm, run in user space) gives the evaluator's verdict, for random policies,
//! inventories and packets. Verdicts are compared whole: action, deciding direction, reason
//! and every policy/rule reference of both directions.
//!
//! Policies are generated as JSON (which is YAML) and go through the real loader.

use std::collections::BTreeMap;
use std::net::IpAddr;

use fathom_policy::{
    compile, evaluate, load_str, CompileOptions, Endpoint, EndpointId, Endpoints,
    IdentityAllocator, LoadOptions, Packet, Peer, PortProtocol, L4,
};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Value};

const LABEL_KEYS: &[&str] = &["app", "tier", "pod"];
const LABEL_VALUES: &[&str] = &["a", "b", "c"];
const EXPR_KEYS: &[&str] = &[
    "app",
    "tier",
    "pod",
    "ns",
    "env",
    "kubernetes.io/metadata.name",
];
const EXPR_VALUES: &[&str] = &["a", "b", "x", "y", "prod"];

/// Pod labels: mostly a few fixed sets, so that pods often share labels (and must then be
/// told apart by derived identity labels), sometimes random.
fn label_map() -> impl Strategy<Value = BTreeMap<String, String>> {
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

fn requirement() -> impl Strategy<Value = Value> {
    (select(EXPR_KEYS), 0..4usize, prop::collection::btree_set(select(EXPR_VALUES), 1..3)).prop_map(|(key, op, values)| {
        let op = ["In", "NotIn", "Exists", "DoesNotExist"][op];
        if op == "In" || op == "NotIn" {
            json!({"key": key, "operator": op, "values": values.into_iter().collect::<Vec<_>>()})
        } else {
            json!({"key": key, "operator": op})
        }
    })
}

fn selector() -> impl Strategy<Value = Value> {
    // Often `{}`, so that policies select pods and peers often enough to matter.
    prop_oneof![2 => Just(json!({})), 3 => random_selector()]
}

fn random_selector() -> impl Strategy<Value = Value> {
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

const BLOCKS: &[(&str, &[&str])] = &[
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

fn peer() -> impl Strategy<Value = Value> {
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

fn port() -> impl Strategy<Value = Value> {
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

fn icmp() -> impl Strategy<Value = Value> {
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
struct RawRule {
    deny: bool,
    peers: Option<Vec<Value>>,
    ports: Option<Vec<Value>>,
    icmps: Option<Vec<Value>>,
}

fn rule() -> impl Strategy<Value = RawRule> {
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
struct RawPolicy {
    fathom: bool,
    audit: bool,
    namespace: &'static str,
    selector: Value,
    types: Option<Vec<&'static str>>,
    ingress: Option<Vec<RawRule>>,
    egress: Option<Vec<RawRule>>,
}

fn policy() -> impl Strategy<Value = RawPolicy> {
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

fn rule_json(r: &RawRule, fathom: bool, peers_key: &str, may_allow: bool) -> Value {
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

fn policy_json(i: usize, p: &RawPolicy) -> Value {
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

const POD_IPS: &[&str] = &[
    "10.0.0.1",
    "10.0.0.2",
    "10.0.1.1",
    "10.0.1.2",
    "192.0.2.5",
    "10.0.0.3",
];
const EXTERNAL_IPS: &[&str] = &[
    "10.0.0.200",
    "10.0.1.77",
    "192.0.2.9",
    "8.8.8.8",
    "fd00::99",
    "2001:db8::1",
    "10.0.9.9",
];

#[derive(Debug, Clone)]
struct RawPod {
    namespace: &'static str,
    labels: BTreeMap<String, String>,
    second_ip: bool,
    http: Option<(u16, bool)>,
    dns: bool,
}

fn pod() -> impl Strategy<Value = RawPod> {
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

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("{s}"))
}

fn inventory(pods: &[RawPod], env: &str) -> Endpoints {
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

fn side(pods: usize) -> impl Strategy<Value = Peer> {
    prop_oneof![
        (1..=pods).prop_map(|i| Peer::Endpoint(EndpointId(u32::try_from(i).unwrap_or(1)))),
        (0..pods).prop_map(|i| Peer::Ip(ip(POD_IPS[i]))),
        select(EXTERNAL_IPS).prop_map(|s| Peer::Ip(ip(s))),
    ]
}

fn l4() -> impl Strategy<Value = L4> {
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
type Scenario = (
    Vec<RawPolicy>,
    Vec<RawPod>,
    &'static str,
    Vec<(Peer, Peer, L4)>,
);

fn scenario() -> impl Strategy<Value = Scenario> {
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn compiled_lookup_agrees_with_the_evaluator((policies, pods, env, packets) in scenario()) {
        let yaml: Vec<String> = policies.iter().enumerate().map(|(i, p)| policy_json(i, p).to_string()).collect();
        let yaml = yaml.join("\n---\n");
        let set = match load_str("random.yaml", &yaml, &LoadOptions::default()) {
            Ok(s) => s,
            Err(e) => return Err(TestCaseError::fail(format!("generated policy rejected: {e}\n{yaml}"))),
        };
        let eps = inventory(&pods, env);
        let compiled = compile(&set, &eps, &mut IdentityAllocator::new(), &CompileOptions::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Besides the random packets, every pod pair on each of the destination's named ports:
        // named-port resolution only matters on exactly those ports, which random draws rarely hit.
        let mut all = packets;
        for src in eps.iter() {
            for dst in eps.iter() {
                for p in &dst.ports {
                    let l4 = match p.protocol {
                        PortProtocol::Tcp => L4::Tcp { dport: p.port },
                        PortProtocol::Udp => L4::Udp { dport: p.port },
                        PortProtocol::Sctp => L4::Sctp { dport: p.port },
                    };
                    all.push((Peer::Endpoint(src.id), Peer::Endpoint(dst.id), l4));
                }
            }
        }
        for (src, dst, l4) in all {
            let packet = Packet::new(src, dst, l4);
            let want = evaluate(&set, &eps, &packet).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got = compiled.evaluate(&eps, &packet).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&got, &want, "packet {:?}\npolicies:\n{}", packet, yaml);
        }
    }
}
