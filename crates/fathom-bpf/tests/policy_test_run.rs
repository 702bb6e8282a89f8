//! policy.bpf.c under BPF_PROG_TEST_RUN, exact cases: conntrack replies, deny beats allow,
//! audit, ICMP type rules, SCTP, port ranges, re-decision after an apply, counters, capacity
//! refusal, malformed frames, the hash datapath's levels and the exact ipcache. Needs root;
//! nothing is attached anywhere.

mod policy_support;

use std::net::IpAddr;

use fathom_bpf::policy::{KernelVerdict, PolicyConfig, PolicyVerdictEvent};
use fathom_policy::{
    compile, load_str, Action, CompileOptions, Compiled, DecisionId, Endpoint, Endpoints,
    IdentityAllocator, LoadOptions, Reason, L4,
};
use policy_support::{frame, Kernel, TC_DROP, TC_PASS};

const A: u32 = 11;
const B: u32 = 12;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn a_ip() -> IpAddr {
    ip("10.1.0.1")
}
fn b_ip() -> IpAddr {
    ip("10.1.0.2")
}

fn inventory() -> Endpoints {
    let mut eps = Endpoints::new();
    eps.add_namespace("x", Default::default()).expect("ns");
    eps.add_host_ip(ip("10.1.0.254")).expect("host");
    eps.add_endpoint(Endpoint::new(A, "x", "a").label("pod", "a").ip(a_ip()))
        .expect("a");
    eps.add_endpoint(Endpoint::new(B, "x", "b").label("pod", "b").ip(b_ip()))
        .expect("b");
    eps
}

fn compiled(yaml: &str) -> Compiled {
    let set = load_str("test.yaml", yaml, &LoadOptions::default()).expect("policy loads");
    compile(
        &set,
        &inventory(),
        &mut IdentityAllocator::new(),
        &CompileOptions::default(),
    )
    .expect("compiles")
}

fn setup(yaml: &str) -> (Kernel, Compiled) {
    let mut k = Kernel::load(&PolicyConfig::default());
    let c = compiled(yaml);
    k.apply(&c);
    (k, c)
}

/// The single event of a run, resolved to (verdict, action, reason, policy names).
fn decided(
    c: &Compiled,
    events: &[PolicyVerdictEvent],
) -> (KernelVerdict, Action, Reason, Vec<String>) {
    assert_eq!(events.len(), 1, "exactly one verdict event: {events:?}");
    let e = &events[0];
    let d = c
        .decision(DecisionId(e.decision_id))
        .expect("known decision");
    let names = d
        .policies
        .iter()
        .map(|r| match r.rule {
            Some(i) => format!("{}/{}#{i}", r.namespace, r.name),
            None => format!("{}/{}", r.namespace, r.name),
        })
        .collect();
    (e.verdict, d.action, d.reason, names)
}

const A_ISOLATED: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-only-to-b-80, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Ingress, Egress]
  egress:
  - to: [{podSelector: {matchLabels: {pod: b}}}]
    ports: [{port: 80}]
"#;

#[test]
fn conntrack_lets_replies_through_and_reports_each_connection_once() {
    let (k, c) = setup(A_ISOLATED);
    let syn = frame(a_ip(), b_ip(), L4::Tcp { dport: 80 }, 40000);
    let (ret, ev) = k.run(A, false, &syn);
    assert_eq!(ret, TC_PASS);
    let (v, action, reason, names) = decided(&c, &ev);
    assert_eq!(
        (v, action, reason),
        (KernelVerdict::Forwarded, Action::Allow, Reason::AllowedBy)
    );
    assert_eq!(names, ["x/a-only-to-b-80#0"]);
    let e = &ev[0];
    assert_eq!(
        (e.src, e.dst, e.sport, e.dport, e.proto),
        (a_ip(), b_ip(), 40000, 80, 6)
    );
    assert_eq!(e.direction, fathom_bpf::abi::policy::POLICY_EGRESS);

    // The reply enters a (a's ingress, which is default deny): the conntrack passes it.
    let reply = frame(b_ip(), a_ip(), L4::Tcp { dport: 40000 }, 80);
    let (ret, ev) = k.run(A, true, &reply);
    assert_eq!(ret, TC_PASS, "reply of an allowed connection");
    assert!(ev.is_empty(), "replies produce no verdict event: {ev:?}");
    // More packets of the connection: no more events.
    let (ret, ev) = k.run(A, false, &syn);
    assert_eq!((ret, ev.len()), (TC_PASS, 0));

    // A new connection from b to a: a's ingress default deny.
    let (ret, ev) = k.run(A, true, &frame(b_ip(), a_ip(), L4::Tcp { dport: 80 }, 5000));
    assert_eq!(ret, TC_DROP);
    let (v, action, reason, names) = decided(&c, &ev);
    assert_eq!(
        (v, action, reason),
        (KernelVerdict::Dropped, Action::Deny, Reason::DefaultDeny)
    );
    assert_eq!(names, ["x/a-only-to-b-80"]);
    // Retransmissions of the denied SYN: dropped, no new event.
    let (ret, ev) = k.run(A, true, &frame(b_ip(), a_ip(), L4::Tcp { dport: 80 }, 5000));
    assert_eq!((ret, ev.len()), (TC_DROP, 0));

    // Counters: the allowed connection's decision counted SYN, reply and the second SYN.
    let counters = k.dp.counters();
    let allow_id = ev_decision(&k, &c, A, false, a_ip(), b_ip(), 80);
    let n = counters
        .get(&allow_id)
        .expect("counter of the allow decision");
    assert_eq!(n.packets, 3);
    assert_eq!(n.bytes, 3 * syn.len() as u64);
    let stats = k.dp.stats();
    assert_eq!(stats["ct_reply"], 1);
    assert_eq!(stats["dropped"], 2);
    // Two connections above, plus the one `ev_decision` opened to learn the decision id.
    assert_eq!(stats["events_sent"], 3);
}

/// The decision id the kernel gives a fresh connection (runs one extra packet).
fn ev_decision(
    k: &Kernel,
    c: &Compiled,
    ep: u32,
    to: bool,
    s: IpAddr,
    d: IpAddr,
    port: u16,
) -> u32 {
    let (_, ev) = k.run(ep, to, &frame(s, d, L4::Tcp { dport: port }, 61000));
    decided(c, &ev);
    ev[0].decision_id
}

#[test]
fn deny_beats_allow() {
    let (k, c) = setup(
        r#"
apiVersion: fathom.dev/v1alpha1
kind: FathomNetworkPolicy
metadata: {name: b-open-but-no-ssh, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress:
  - from: [{podSelector: {}}]
  - action: deny
    logLabel: no-ssh
    from: [{podSelector: {matchLabels: {pod: a}}}]
    ports: [{port: 22}]
"#,
    );
    let (ret, ev) = k.run(B, true, &frame(a_ip(), b_ip(), L4::Tcp { dport: 22 }, 1000));
    assert_eq!(ret, TC_DROP);
    let (v, _, reason, names) = decided(&c, &ev);
    assert_eq!((v, reason), (KernelVerdict::Dropped, Reason::DeniedBy));
    assert_eq!(names, ["x/b-open-but-no-ssh#1"]);
    let (ret, ev) = k.run(B, true, &frame(a_ip(), b_ip(), L4::Tcp { dport: 80 }, 1001));
    assert_eq!(ret, TC_PASS);
    assert_eq!(decided(&c, &ev).2, Reason::AllowedBy);
}

#[test]
fn audit_passes_and_reports_audit() {
    let (k, c) = setup(
        r#"
apiVersion: fathom.dev/v1alpha1
kind: FathomNetworkPolicy
metadata: {name: b-lockdown-trial, namespace: x}
spec:
  mode: audit
  podSelector: {matchLabels: {pod: b}}
  policyTypes: [Ingress]
  ingress:
  - ports: [{port: 80}]
"#,
    );
    let (ret, ev) = k.run(
        B,
        true,
        &frame(a_ip(), b_ip(), L4::Tcp { dport: 9999 }, 1000),
    );
    assert_eq!(ret, TC_PASS, "audit never drops");
    let (v, action, reason, names) = decided(&c, &ev);
    assert_eq!(
        (v, action, reason),
        (
            KernelVerdict::Audit,
            Action::Audit,
            Reason::AuditDefaultDeny
        )
    );
    assert_eq!(names, ["x/b-lockdown-trial"]);
    let (ret, ev) = k.run(B, true, &frame(a_ip(), b_ip(), L4::Tcp { dport: 80 }, 1001));
    assert_eq!(ret, TC_PASS);
    assert_eq!(decided(&c, &ev).0, KernelVerdict::Forwarded);
    assert_eq!(k.dp.stats()["audited"], 1);
}

#[test]
fn icmp_type_rules_and_echo_replies() {
    let (k, c) = setup(
        r#"
apiVersion: fathom.dev/v1alpha1
kind: FathomNetworkPolicy
metadata: {name: b-ping-only, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  policyTypes: [Ingress, Egress]
  ingress:
  - icmps: [{type: 8}]
"#,
    );
    let echo = L4::Icmp {
        icmp_type: 8,
        code: 0,
    };
    let (ret, ev) = k.run(B, true, &frame(a_ip(), b_ip(), echo, 77));
    assert_eq!(ret, TC_PASS);
    assert_eq!(decided(&c, &ev).2, Reason::AllowedBy);
    // The echo reply leaves b (egress default deny): same identifier, passed as a reply.
    let reply = L4::Icmp {
        icmp_type: 0,
        code: 0,
    };
    let (ret, ev) = k.run(B, false, &frame(b_ip(), a_ip(), reply, 77));
    assert_eq!((ret, ev.len()), (TC_PASS, 0));
    // An echo reply nobody asked for: egress default deny.
    let (ret, ev) = k.run(B, false, &frame(b_ip(), a_ip(), reply, 78));
    assert_eq!(ret, TC_DROP);
    assert_eq!(decided(&c, &ev).2, Reason::DefaultDeny);
    // Timestamp request: not type 8.
    let (ret, _) = k.run(
        B,
        true,
        &frame(
            a_ip(),
            b_ip(),
            L4::Icmp {
                icmp_type: 13,
                code: 0,
            },
            79,
        ),
    );
    assert_eq!(ret, TC_DROP);
    // TCP is not ICMP.
    let (ret, _) = k.run(B, true, &frame(a_ip(), b_ip(), L4::Tcp { dport: 8 }, 80));
    assert_eq!(ret, TC_DROP);
}

#[test]
fn sctp_ports_and_port_ranges() {
    let (k, _) = setup(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-ranges, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress:
  - ports:
    - {protocol: SCTP, port: 5000}
    - {protocol: TCP, port: 8000, endPort: 8100}
"#,
    );
    let mut sport = 2000;
    let mut run = |l4: L4| {
        sport += 1;
        k.run(B, true, &frame(a_ip(), b_ip(), l4, sport)).0
    };
    assert_eq!(run(L4::Sctp { dport: 5000 }), TC_PASS);
    assert_eq!(run(L4::Sctp { dport: 5001 }), TC_DROP);
    assert_eq!(
        run(L4::Tcp { dport: 5000 }),
        TC_DROP,
        "an SCTP rule does not allow TCP"
    );
    assert_eq!(
        run(L4::Udp { dport: 8000 }),
        TC_DROP,
        "a TCP rule does not allow UDP"
    );
    for (port, want) in [
        (7999, TC_DROP),
        (8000, TC_PASS),
        (8050, TC_PASS),
        (8063, TC_PASS),
        (8064, TC_PASS),
        (8100, TC_PASS),
        (8101, TC_DROP),
    ] {
        assert_eq!(run(L4::Tcp { dport: port }), want, "TCP {port}");
    }
}

#[test]
fn an_apply_re_decides_established_connections_and_keeps_counters_apart() {
    let open = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-web, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress: [{ports: [{port: 80}]}]
"#;
    let closed = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-closed, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  policyTypes: [Ingress]
"#;
    let (mut k, _) = setup(open);
    let syn = frame(a_ip(), b_ip(), L4::Tcp { dport: 80 }, 3000);
    let (ret, ev) = k.run(B, true, &syn);
    assert_eq!(ret, TC_PASS);
    let allow = ev[0].decision_id;
    assert_ne!(allow, 0);
    assert_eq!(k.dp.generation(), 1);
    let c2 = compiled(closed);
    k.apply(&c2);
    assert_eq!(k.dp.generation(), 2);
    let (ret, ev) = k.run(B, true, &syn);
    assert_eq!(
        ret, TC_DROP,
        "the connection lost its right with the new policy"
    );
    let (_, _, reason, names) = decided(&c2, &ev);
    assert_eq!(
        (reason, names),
        (Reason::DefaultDeny, vec!["x/b-closed".to_string()])
    );
    assert_eq!(ev[0].generation, 2);
    // Only the new generation's counters are reported as current.
    let counters = k.dp.counters();
    assert_eq!(counters.len(), 1, "{counters:?}");
    assert_eq!(counters.values().next().map(|c| c.packets), Some(1));
    // Generation 3 rewrites generation 1's slot: its counters come back with the apply and
    // the slot starts again from zero.
    let report = k.apply(&compiled(open));
    assert_eq!((report.generation, report.slot), (3, 1));
    assert_eq!(
        report.retired_counters.get(&allow).map(|c| c.packets),
        Some(1),
        "{:?}",
        report.retired_counters
    );
    assert!(k.dp.counters().is_empty(), "{:?}", k.dp.counters());
    k.dp.flush_conntrack();
    assert_eq!(k.run(B, true, &syn).0, TC_PASS);
    let counters = k.dp.counters();
    assert_eq!(
        counters.get(&allow).map(|c| c.packets),
        Some(1),
        "{counters:?}"
    );
    assert_eq!(counters.len(), 1, "{counters:?}");
}

/// Loads a datapath with `cfg`, applies A_ISOLATED, then `big`, which must be refused with
/// every map unchanged; returns the error and `big`'s policy map entries.
fn refused(cfg: &PolicyConfig, big: &Compiled) -> (String, policy_support::PolicyEntries) {
    let mut k = Kernel::load(cfg);
    k.apply(&compiled(A_ISOLATED));
    let before = k.dp.dump();
    let (policy, ipcache) = policy_support::map_entries(big);
    let err =
        k.dp.apply(&policy, &ipcache)
            .expect_err("must not fit")
            .to_string();
    assert_eq!(
        k.dp.dump(),
        before,
        "a refused apply leaves every map as it was"
    );
    assert_eq!(k.dp.generation(), 1);
    (err, policy)
}

#[test]
fn an_apply_that_does_not_fit_is_refused_and_changes_nothing() {
    let cfg = PolicyConfig {
        policy_capacity: 16,
        ..PolicyConfig::default()
    };
    let big = compiled(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: many-ports, namespace: x}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: 1}, {port: 2}, {port: 3}, {port: 4}, {port: 5}, {port: 6}, {port: 7}, {port: 8}, {port: 9}, {port: 10}]
"#,
    );
    let (err, policy) = refused(&cfg, &big);
    assert!(policy.len() > 16);
    assert!(
        err.contains(&format!(
            "policy needs {} policy map entries, the map holds 16",
            policy.len()
        )),
        "{err}"
    );
}

#[test]
fn a_policy_with_more_decisions_than_counters_is_refused() {
    // 16 counters = 8 per generation: decision ids 1..=7.
    let cfg = PolicyConfig {
        counter_capacity: 16,
        ..PolicyConfig::default()
    };
    // Ten policies, one port each: each port's verdict names a different policy.
    let docs: Vec<String> = (1..=10)
        .map(|i| {
            format!(
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p{i}, namespace: x}}\nspec:\n  podSelector: {{}}\n  ingress:\n  - ports: [{{port: {i}}}]\n"
            )
        })
        .collect();
    let (err, policy) = refused(&cfg, &compiled(&docs.join("---\n")));
    let decisions = policy
        .iter()
        .map(|(_, v)| u32::from_ne_bytes([v[4], v[5], v[6], v[7]]))
        .max()
        .expect("entries");
    assert!(decisions > 7, "{decisions}");
    assert!(
        err.contains(&format!(
            "policy has {decisions} decisions, the counters hold 7 per generation"
        )),
        "{err}"
    );
}

#[test]
fn malformed_and_non_ip_frames() {
    let (k, _) = setup(A_ISOLATED);
    let mut f = frame(a_ip(), b_ip(), L4::Tcp { dport: 80 }, 1);
    f.truncate(14 + 20 + 2); // half a TCP port pair
    assert_eq!(k.run(A, false, &f).0, TC_DROP);
    let mut arp = vec![0xff; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    assert_eq!(k.run(A, false, &arp).0, TC_PASS);
    let stats = k.dp.stats();
    assert_eq!((stats["malformed"], stats["non_ip"]), (1, 1));
    // A frame on an interface that is not an endpoint: untouched.
    k.dp.remove_endpoint(policy_support::TEST_IFINDEX);
    let (ret, _) =
        k.dp.test_run(false, &frame(a_ip(), b_ip(), L4::Tcp { dport: 9 }, 2), 1)
            .expect("run");
    assert_eq!(ret, TC_PASS);
    assert_eq!(k.dp.stats()["unmanaged"], 1);
}

#[test]
fn an_interface_whose_endpoint_slot_is_taken_is_found_in_the_overflow_hash() {
    // 16 endpoint slots: ifindex 17 takes the slot of the test interface (ifindex 1).
    let cfg = PolicyConfig {
        endpoint_capacity: 16,
        ..PolicyConfig::default()
    };
    let mut k = Kernel::load(&cfg);
    k.apply(&compiled(A_ISOLATED));
    let other = policy_support::TEST_IFINDEX + 16;
    k.dp.set_endpoint(other, B).expect("endpoint");
    let overflow = |k: &Kernel| k.dp.dump()["policy_endpoints"].len();
    // A is isolated: dropped only if the interface is found to be A's (others pass).
    let to_a = frame(b_ip(), a_ip(), L4::Tcp { dport: 80 }, 1);
    assert_eq!(k.run(A, true, &to_a).0, TC_DROP);
    assert_eq!(
        overflow(&k),
        1,
        "the test interface went to the overflow hash"
    );
    k.dp.flush_conntrack();
    // Its slot freed, the next registration moves it there.
    k.dp.remove_endpoint(other);
    assert_eq!(k.run(A, true, &to_a).0, TC_DROP);
    assert_eq!(overflow(&k), 0);
    k.dp.remove_endpoint(policy_support::TEST_IFINDEX);
    let (ret, _) = k.dp.test_run(true, &to_a, 1).expect("run");
    assert_eq!(ret, TC_PASS);
    assert_eq!(k.dp.stats()["unmanaged"], 1);
}

/// The hash datapath's structure: wide port ranges expanded to 256-port blocks and exact
/// ports, a deny on a wider key (any peer, a range) beating an allow of a narrower one, a
/// protocol-wide rule, ICMP type with any code; pod and host addresses in the exact ipcache
/// hash, CIDRs in the LPM trie.
#[test]
fn levels_wide_ranges_and_the_exact_ipcache() {
    let (k, c) = setup(
        r#"
apiVersion: fathom.dev/v1alpha1
kind: FathomNetworkPolicy
metadata: {name: b-levels, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress:
  - from: [{podSelector: {matchLabels: {pod: a}}}]
    ports: [{protocol: TCP, port: 1024, endPort: 65535}]
  - action: deny
    ports: [{protocol: TCP, port: 3000, endPort: 3999}]
  - from: [{ipBlock: {cidr: 192.0.2.0/24}}]
    ports: [{protocol: UDP}]
  - icmps: [{type: 8}]
"#,
    );
    for e in c.entries() {
        assert!(
            [0, 8, 16, 24].contains(&e.key.l4.len),
            "only probed levels: {e:?}"
        );
    }
    let mut sport = 3000;
    let mut run = |src: IpAddr, l4: L4| {
        sport += 1;
        k.run(B, true, &frame(src, b_ip(), l4, sport)).0
    };
    for (port, want) in [
        (1023, TC_DROP),
        (1024, TC_PASS),
        (1279, TC_PASS),
        (1280, TC_PASS),
        (2999, TC_PASS),
        (3000, TC_DROP),
        (3071, TC_DROP),
        (3072, TC_DROP),
        (3999, TC_DROP),
        (4000, TC_PASS),
        (65535, TC_PASS),
    ] {
        assert_eq!(
            run(a_ip(), L4::Tcp { dport: port }),
            want,
            "TCP {port} from a"
        );
    }
    let cidr = ip("192.0.2.7");
    assert_eq!(run(cidr, L4::Udp { dport: 53 }), TC_PASS);
    assert_eq!(run(cidr, L4::Udp { dport: 65000 }), TC_PASS);
    assert_eq!(run(cidr, L4::Tcp { dport: 5000 }), TC_DROP, "UDP only");
    assert_eq!(run(ip("198.51.100.1"), L4::Udp { dport: 53 }), TC_DROP);
    for (code, want) in [(0, TC_PASS), (5, TC_PASS)] {
        let l4 = L4::Icmp { icmp_type: 8, code };
        assert_eq!(run(ip("198.51.100.1"), l4), want, "echo code {code}");
    }
    let ts = L4::Icmp {
        icmp_type: 13,
        code: 0,
    };
    assert_eq!(run(a_ip(), ts), TC_DROP);

    // Pods and the host in the exact hash of the active slot, the rest in the trie.
    let dump = k.dp.dump();
    let slot = k.dp.generation() & 1;
    let exact = &dump[if slot == 1 {
        "policy_ipcache_exact1"
    } else {
        "policy_ipcache_exact0"
    }];
    let mapped = |s: &str| match ip(s) {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut want: Vec<Vec<u8>> = ["10.1.0.1", "10.1.0.2", "10.1.0.254"]
        .iter()
        .map(|s| mapped(s))
        .collect();
    want.sort();
    assert_eq!(exact.keys().cloned().collect::<Vec<_>>(), want);
    let trie = &dump[if slot == 1 {
        "policy_ipcache1"
    } else {
        "policy_ipcache0"
    }];
    let mut lens: Vec<u32> = trie
        .keys()
        .map(|k| u32::from_ne_bytes([k[0], k[1], k[2], k[3]]))
        .collect();
    lens.sort_unstable();
    assert_eq!(lens, vec![0, 96, 120], "::/0, 0.0.0.0/0, 192.0.2.0/24");
}
