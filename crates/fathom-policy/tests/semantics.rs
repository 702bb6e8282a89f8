//! NetworkPolicy and Fathom semantics, through the evaluator (each verdict is also checked
//! against the compiled datapath by `common::verdict`).

mod common;

use common::*;
use fathom_policy::{Action, Direction, Mode, Peer, PolicyKind, Reason, RuleRef, L4};

fn doc(kind: &str, body: &str) -> String {
    format!("{kind}{body}")
}

fn action(set: &fathom_policy::PolicySet, src: Peer, dst: Peer, l4: L4) -> Action {
    verdict(set, src, dst, l4).action
}

#[test]
fn unselected_pods_default_allow() {
    let set = policies("");
    let v = verdict(&set, XA, YA, tcp(80));
    assert_eq!(v.action, Action::Allow);
    assert_eq!(v.reason, Reason::NotSelected);
    assert_eq!(v.reason.to_string(), "no policy selects the pod");
}

#[test]
fn absent_rules_deny_and_empty_rule_allows_all() {
    let deny = policies(doc(
        K8S,
        "metadata: {name: deny, namespace: y}\nspec:\n  podSelector: {}\n",
    ));
    let v = verdict(&deny, XA, YA, tcp(80));
    assert_eq!(
        (v.action, v.direction, v.reason),
        (Action::Deny, Direction::Ingress, Reason::DefaultDeny)
    );
    assert_eq!(v.policies.len(), 1);
    assert_eq!(
        (v.policies[0].name.as_str(), v.policies[0].rule),
        ("deny", None)
    );
    assert_eq!(v.reason.to_string(), "default deny");

    let empty_list = policies(doc(
        K8S,
        "metadata: {name: deny, namespace: y}\nspec:\n  podSelector: {}\n  ingress: []\n",
    ));
    assert_eq!(action(&empty_list, XA, YA, tcp(80)), Action::Deny);

    let allow_all = policies(doc(
        K8S,
        "metadata: {name: all, namespace: y}\nspec:\n  podSelector: {}\n  ingress: [{}]\n",
    ));
    let v = verdict(&allow_all, XA, YA, tcp(80));
    assert_eq!((v.action, v.reason), (Action::Allow, Reason::AllowedBy));
    assert_eq!(v.policies[0].rule, Some(0));

    // `from: []` and `ports: []` mean "all", like absent.
    let empty_lists =
        policies(doc(K8S, "metadata: {name: all, namespace: y}\nspec:\n  podSelector: {}\n  ingress: [{from: [], ports: []}]\n"));
    assert_eq!(action(&empty_lists, XA, YA, udp(53)), Action::Allow);
    assert_eq!(
        action(
            &empty_lists,
            Peer::Ip(ip("192.0.2.1")),
            YA,
            L4::Icmp {
                icmp_type: 8,
                code: 0
            }
        ),
        Action::Allow
    );
}

#[test]
fn policy_types_defaulting() {
    // No policyTypes, non-empty egress: Ingress and Egress.
    let both = policies(doc(
        K8S,
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  egress: [{ports: [{port: 53, protocol: UDP}]}]\n",
    ));
    let p = &both.policies()[0];
    assert!(p.isolates_ingress && p.isolates_egress);
    assert_eq!(action(&both, XA, YA, udp(53)), Action::Allow);
    assert_eq!(action(&both, XA, YA, tcp(80)), Action::Deny);
    assert_eq!(
        action(&both, XB, XA, tcp(80)),
        Action::Deny,
        "ingress isolated too"
    );

    // No policyTypes, `egress: []`: Kubernetes only defaults Ingress (the list is empty).
    let ingress_only =
        policies(doc(K8S, "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  egress: []\n"));
    let p = &ingress_only.policies()[0];
    assert!(p.isolates_ingress && !p.isolates_egress);
    assert_eq!(action(&ingress_only, XA, YA, tcp(80)), Action::Allow);

    // Explicit [Egress]: ingress rules are ignored and ingress stays open.
    let egress_only = policies(doc(
        K8S,
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  ingress: [{from: [{podSelector: {matchLabels: {pod: zzz}}}]}]\n",
    ));
    let p = &egress_only.policies()[0];
    assert!(!p.isolates_ingress && p.isolates_egress && p.ingress.is_empty());
    assert_eq!(action(&egress_only, XB, XA, tcp(80)), Action::Allow);
    assert_eq!(action(&egress_only, XA, XB, tcp(80)), Action::Deny);
}

#[test]
fn connection_needs_egress_and_ingress() {
    let set = policies(doc(
        K8S,
        "metadata: {name: out, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress: [{to: [{namespaceSelector: {matchLabels: {ns: y}}}]}]\n---\n",
    ) + &doc(
        K8S,
        "metadata: {name: in, namespace: y}\nspec:\n  podSelector: {matchLabels: {pod: c}}\n  ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: b}}}]}]\n",
    ));
    // x/a → y/a: egress allowed, y/a not isolated.
    assert_eq!(action(&set, XA, YA, tcp(80)), Action::Allow);
    // x/a → y/c: egress allowed, ingress only from pod b.
    let v = verdict(&set, XA, YC, tcp(80));
    assert_eq!((v.action, v.direction), (Action::Deny, Direction::Ingress));
    assert_eq!(v.egress.as_ref().map(|e| e.action), Some(Action::Allow));
    // x/b → y/c: x/b is not egress-isolated; ingress allows pod b from any namespace.
    let v = verdict(&set, XB, YC, tcp(80));
    assert_eq!(
        (v.action, v.reason, v.direction),
        (Action::Allow, Reason::AllowedBy, Direction::Ingress)
    );
    // x/a → x/b: egress only to namespace y.
    let v = verdict(&set, XA, XB, tcp(80));
    assert_eq!((v.action, v.direction), (Action::Deny, Direction::Egress));
}

#[test]
fn pod_and_namespace_selectors_and_within_a_peer_or_across_peers() {
    let and = policies(doc(
        K8S,
        "metadata: {name: p, namespace: y}\nspec:\n  podSelector: {matchLabels: {pod: c}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: x}}, podSelector: {matchLabels: {pod: a}}}]}]\n",
    ));
    assert_eq!(action(&and, XA, YC, tcp(1)), Action::Allow);
    assert_eq!(
        action(&and, XB, YC, tcp(1)),
        Action::Deny,
        "ns matches, pod does not"
    );
    assert_eq!(
        action(&and, YA, YC, tcp(1)),
        Action::Deny,
        "pod matches, ns does not"
    );

    let or = policies(doc(
        K8S,
        "metadata: {name: p, namespace: y}\nspec:\n  podSelector: {matchLabels: {pod: c}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: x}}}, {podSelector: {matchLabels: {pod: a}}}]}]\n",
    ));
    assert_eq!(action(&or, XA, YC, tcp(1)), Action::Allow);
    assert_eq!(action(&or, XB, YC, tcp(1)), Action::Allow, "namespace x");
    assert_eq!(
        action(&or, YA, YC, tcp(1)),
        Action::Allow,
        "pod a in the policy's namespace"
    );

    // podSelector alone means the policy's own namespace.
    let own = policies(doc(
        K8S,
        "metadata: {name: p, namespace: y}\nspec:\n  podSelector: {matchLabels: {pod: c}}\n  ingress: [{from: [{podSelector: {matchLabels: {pod: a}}}]}]\n",
    ));
    assert_eq!(action(&own, XA, YC, tcp(1)), Action::Deny);
    assert_eq!(action(&own, YA, YC, tcp(1)), Action::Allow);
}

#[test]
fn match_expressions_and_the_automatic_namespace_label() {
    let set = policies(doc(
        K8S,
        "metadata: {name: p, namespace: y}\nspec:\n  podSelector: {matchExpressions: [{key: app, operator: Exists}]}\n  ingress:\n  - from:\n    - namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [x]}]}\n      podSelector: {matchExpressions: [{key: pod, operator: NotIn, values: [b]}]}\n",
    ));
    assert_eq!(action(&set, XA, YC, tcp(5)), Action::Allow);
    assert_eq!(action(&set, XB, YC, tcp(5)), Action::Deny, "NotIn b");
    assert_eq!(action(&set, YA, YC, tcp(5)), Action::Deny, "namespace y");
    assert_eq!(
        action(&set, XA, YA, tcp(5)),
        Action::Allow,
        "y/a has no app label: not selected"
    );

    // NotIn on a missing key matches; DoesNotExist too.
    let set = policies(doc(
        K8S,
        "metadata: {name: p, namespace: y}\nspec:\n  podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [db]}]}\n  ingress: []\n",
    ));
    assert_eq!(
        action(&set, XA, YA, tcp(5)),
        Action::Deny,
        "y/a has no app label: NotIn selects it"
    );
    assert_eq!(
        action(&set, XA, YC, tcp(5)),
        Action::Allow,
        "app=db: not selected"
    );
}

#[test]
fn ip_block_except_and_longest_prefix() {
    let set = policies(doc(
        K8S,
        "metadata: {name: p, namespace: y}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{ipBlock: {cidr: 192.168.0.0/16, except: [192.168.1.0/24]}}]\n  - from: [{ipBlock: {cidr: 192.168.1.128/25}}]\n    ports: [{port: 443}]\n",
    ));
    let from = |s: &str, port| action(&set, Peer::Ip(ip(s)), YA, tcp(port));
    assert_eq!(from("192.168.2.1", 80), Action::Allow);
    assert_eq!(from("192.168.1.1", 80), Action::Deny, "in except");
    assert_eq!(
        from("192.168.1.200", 80),
        Action::Deny,
        "in except, second rule is 443 only"
    );
    assert_eq!(
        from("192.168.1.200", 443),
        Action::Allow,
        "longer prefix inside the except, on 443"
    );
    assert_eq!(from("192.168.1.1", 443), Action::Deny);
    assert_eq!(from("10.1.1.1", 80), Action::Deny);
    let v = verdict(&set, Peer::Ip(ip("192.168.1.200")), YA, tcp(443));
    assert_eq!(
        v.policies.iter().map(|r| r.rule).collect::<Vec<_>>(),
        [Some(1)]
    );
}

#[test]
fn ip_blocks_select_pods_by_their_addresses() {
    let set = policies(doc(
        K8S,
        "metadata: {name: p, namespace: y}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.0/24, except: [10.0.0.2/32]}}]\n",
    ));
    assert_eq!(action(&set, XA, YA, tcp(80)), Action::Allow, "10.0.0.1");
    assert_eq!(
        action(&set, XB, YA, tcp(80)),
        Action::Deny,
        "10.0.0.2 is excepted"
    );
    assert_eq!(
        action(&set, Peer::Ip(ip("10.0.0.1")), YA, tcp(80)),
        Action::Allow,
        "by address, same pod"
    );
    assert_eq!(
        action(&set, Peer::Ip(ip("10.0.0.77")), YA, tcp(80)),
        Action::Allow,
        "outside address"
    );
}

#[test]
fn host_traffic_is_always_allowed() {
    let set = policies(doc(
        K8S,
        "metadata: {name: p, namespace: y}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n---\n",
    ) + &doc(
        FATHOM,
        "metadata: {name: d, namespace: y}\nspec:\n  podSelector: {}\n  ingress: [{action: deny, from: [{ipBlock: {cidr: 0.0.0.0/0}}]}]\n",
    ));
    let v = verdict(&set, Peer::Ip(ip(HOST_IP)), YA, tcp(10250));
    assert_eq!((v.action, v.reason), (Action::Allow, Reason::Host));
    assert_eq!(
        action(&set, YA, Peer::Ip(ip(HOST_IP)), tcp(6443)),
        Action::Allow
    );
    assert_eq!(
        action(&set, Peer::Ip(ip("10.0.9.8")), YA, tcp(10250)),
        Action::Deny
    );
}

#[test]
fn named_ports_resolve_on_the_destination_pod() {
    // Ingress: the selected pod's own number for "http" (x/a: 80, x/b: 8080).
    let ingress = policies(doc(
        K8S,
        "metadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: http}]}]\n",
    ));
    assert_eq!(action(&ingress, YA, XA, tcp(80)), Action::Allow);
    assert_eq!(action(&ingress, YA, XA, tcp(8080)), Action::Deny);
    assert_eq!(action(&ingress, YA, XB, tcp(8080)), Action::Allow);
    assert_eq!(action(&ingress, YA, XB, tcp(80)), Action::Deny);
    assert_eq!(
        action(&ingress, YA, XA, udp(80)),
        Action::Deny,
        "http is TCP"
    );

    // Egress: the peer pod's number; an address outside has no named ports.
    let egress = policies(doc(
        K8S,
        "metadata: {name: p, namespace: y}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress: [{ports: [{port: http, protocol: TCP}, {port: dns, protocol: UDP}]}]\n",
    ));
    assert_eq!(action(&egress, YA, XA, tcp(80)), Action::Allow);
    assert_eq!(action(&egress, YA, XB, tcp(80)), Action::Deny);
    assert_eq!(action(&egress, YA, XB, tcp(8080)), Action::Allow);
    assert_eq!(action(&egress, YA, XA, udp(53)), Action::Allow);
    assert_eq!(
        action(&egress, YA, XB, udp(53)),
        Action::Deny,
        "x/b has no dns port"
    );
    assert_eq!(
        action(&egress, YA, Peer::Ip(ip("192.0.2.1")), tcp(80)),
        Action::Deny
    );
}

#[test]
fn end_port_ranges_are_inclusive() {
    let set = policies(doc(
        K8S,
        "metadata: {name: pr, namespace: y}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{ports: [{port: 80, endPort: 103, protocol: TCP}, {port: 5000, protocol: SCTP}]}]\n",
    ));
    for (port, want) in [
        (79, Action::Deny),
        (80, Action::Allow),
        (96, Action::Allow),
        (103, Action::Allow),
        (104, Action::Deny),
    ] {
        assert_eq!(action(&set, XA, YA, tcp(port)), want, "tcp {port}");
    }
    assert_eq!(action(&set, XA, YA, udp(90)), Action::Deny);
    assert_eq!(
        action(&set, XA, YA, L4::Sctp { dport: 5000 }),
        Action::Allow
    );
}

#[test]
fn deny_rules_win_over_allows() {
    let set = policies(doc(
        K8S,
        "metadata: {name: allow-all, namespace: y}\nspec:\n  podSelector: {}\n  ingress: [{}]\n---\n",
    ) + &doc(
        FATHOM,
        "metadata: {name: no-ssh, namespace: y}\nspec:\n  podSelector: {}\n  ingress:\n  - action: deny\n    description: no ssh from x\n    logLabel: ssh-from-x\n    from: [{namespaceSelector: {matchLabels: {ns: x}}}]\n    ports: [{port: 22}]\n",
    ));
    let v = verdict(&set, XA, YA, tcp(22));
    assert_eq!(
        (v.action, v.reason, v.direction),
        (Action::Deny, Reason::DeniedBy, Direction::Ingress)
    );
    assert_eq!(
        v.policies,
        [RuleRef {
            namespace: "y".into(),
            name: "no-ssh".into(),
            kind: PolicyKind::FathomNetworkPolicy,
            mode: Mode::Enforce,
            rule: Some(0),
            description: Some("no ssh from x".into()),
            log_label: Some("ssh-from-x".into()),
        }]
    );
    assert_eq!(action(&set, XA, YA, tcp(23)), Action::Allow);
    assert_eq!(
        action(&set, YC, YA, tcp(22)),
        Action::Allow,
        "deny is for namespace x only"
    );
}

#[test]
fn fathom_deny_only_policies_do_not_isolate() {
    let set = policies(doc(
        FATHOM,
        "metadata: {name: block, namespace: y}\nspec:\n  podSelector: {}\n  egress: [{action: deny, to: [{ipBlock: {cidr: 192.0.2.0/24}}]}]\n",
    ));
    let p = &set.policies()[0];
    assert!(!p.isolates_ingress && !p.isolates_egress);
    assert_eq!(
        action(&set, YA, Peer::Ip(ip("192.0.2.9")), tcp(443)),
        Action::Deny
    );
    let v = verdict(&set, YA, Peer::Ip(ip("198.51.100.1")), tcp(443));
    assert_eq!((v.action, v.reason), (Action::Allow, Reason::NotSelected));
    assert_eq!(
        action(&set, XA, YA, tcp(80)),
        Action::Allow,
        "ingress untouched"
    );

    // Explicit policyTypes isolates even with deny rules only.
    let iso = policies(doc(
        FATHOM,
        "metadata: {name: block, namespace: y}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{action: deny, to: [{ipBlock: {cidr: 192.0.2.0/24}}]}]\n",
    ));
    assert_eq!(
        action(&iso, YA, Peer::Ip(ip("198.51.100.1")), tcp(443)),
        Action::Deny
    );
}

#[test]
fn audit_mode_reports_but_never_drops() {
    let audit_deny = policies(doc(
        FATHOM,
        "metadata: {name: a, namespace: y}\nspec:\n  mode: audit\n  podSelector: {}\n  ingress: [{action: deny, from: [{namespaceSelector: {matchLabels: {ns: x}}}]}]\n",
    ));
    let v = verdict(&audit_deny, XA, YA, tcp(80));
    assert_eq!((v.action, v.reason), (Action::Audit, Reason::AuditDeniedBy));
    assert_eq!(v.policies[0].mode, Mode::Audit);
    assert_eq!(action(&audit_deny, YC, YA, tcp(80)), Action::Allow);

    // An audit policy that isolates: what it does not allow is reported as audit default deny.
    let audit_iso = policies(doc(
        FATHOM,
        "metadata: {name: a, namespace: y}\nspec:\n  mode: audit\n  description: only db may talk\n  podSelector: {}\n  ingress: [{from: [{podSelector: {matchLabels: {app: db}}}]}]\n",
    ));
    let v = verdict(&audit_iso, XA, YA, tcp(80));
    assert_eq!(
        (v.action, v.reason),
        (Action::Audit, Reason::AuditDefaultDeny)
    );
    assert_eq!(
        v.policies[0].description.as_deref(),
        Some("only db may talk")
    );
    assert_eq!(action(&audit_iso, YC, YA, tcp(80)), Action::Allow);
}

#[test]
fn enforce_and_audit_precedence() {
    let enforce_allow = doc(K8S, "metadata: {name: web, namespace: y}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 80}]}]\n---\n");
    let audit_deny_80 = doc(
        FATHOM,
        "metadata: {name: tighten, namespace: y}\nspec:\n  mode: audit\n  podSelector: {}\n  ingress: [{action: deny, from: [{namespaceSelector: {matchLabels: {ns: x}}}], ports: [{port: 80}]}]\n---\n",
    );
    let audit_allow_all = doc(FATHOM, "metadata: {name: loosen, namespace: y}\nspec:\n  mode: audit\n  podSelector: {}\n  ingress: [{}]\n");
    let set = policies(&(enforce_allow + &audit_deny_80 + &audit_allow_all));
    // Enforce allows 80; an audit deny matches: allowed, reported.
    assert_eq!(action(&set, XA, YA, tcp(80)), Action::Audit);
    // Enforce default-denies 81; an audit allow cannot loosen enforcement.
    let v = verdict(&set, XA, YA, tcp(81));
    assert_eq!((v.action, v.reason), (Action::Deny, Reason::DefaultDeny));
    assert_eq!(
        v.policies
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["web"],
        "only enforce policies deny"
    );
    // From y, 80 is allowed by the enforce rule and the audit allow-all.
    let v = verdict(&set, YC, YA, tcp(80));
    assert_eq!((v.action, v.reason), (Action::Allow, Reason::AllowedBy));
    assert_eq!(
        v.policies
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["loosen", "web"]
    );
}

#[test]
fn icmp_type_rules() {
    let set = policies(doc(
        FATHOM,
        "metadata: {name: ping, namespace: y}\nspec:\n  podSelector: {matchLabels: {pod: c}}\n  ingress:\n  - icmps: [{type: 8}, {family: IPv6, type: 128, code: 0}]\n  - action: deny\n    icmps: [{type: 8, code: 1}]\n",
    ));
    let from = Peer::Ip(ip("192.0.2.1"));
    let from6 = Peer::Ip(ip("2001:db8::1"));
    assert_eq!(
        action(
            &set,
            from,
            YC,
            L4::Icmp {
                icmp_type: 8,
                code: 0
            }
        ),
        Action::Allow
    );
    assert_eq!(
        action(
            &set,
            from,
            YC,
            L4::Icmp {
                icmp_type: 8,
                code: 1
            }
        ),
        Action::Deny,
        "deny on code 1"
    );
    assert_eq!(
        action(
            &set,
            from,
            YC,
            L4::Icmp {
                icmp_type: 13,
                code: 0
            }
        ),
        Action::Deny,
        "timestamp: default deny"
    );
    assert_eq!(
        action(
            &set,
            from6,
            YC,
            L4::Icmpv6 {
                icmp_type: 128,
                code: 0
            }
        ),
        Action::Allow
    );
    assert_eq!(
        action(
            &set,
            from6,
            YC,
            L4::Icmpv6 {
                icmp_type: 128,
                code: 3
            }
        ),
        Action::Deny
    );
    assert_eq!(
        action(
            &set,
            from6,
            YC,
            L4::Icmpv6 {
                icmp_type: 8,
                code: 0
            }
        ),
        Action::Deny,
        "type 8 is ICMPv4's"
    );
    assert_eq!(
        action(&set, from, YC, tcp(8)),
        Action::Deny,
        "icmps say nothing about TCP"
    );
    // A port rule does not cover ICMP; a rule without ports covers every protocol.
    let ports = policies(doc(K8S, "metadata: {name: p, namespace: y}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 80}]}]\n"));
    assert_eq!(
        action(
            &ports,
            from,
            YC,
            L4::Icmp {
                icmp_type: 8,
                code: 0
            }
        ),
        Action::Deny
    );
    assert_eq!(action(&ports, from, YC, L4::Other(47)), Action::Deny);
    let any = policies(doc(
        K8S,
        "metadata: {name: p, namespace: y}\nspec:\n  podSelector: {}\n  ingress: [{}]\n",
    ));
    assert_eq!(action(&any, from, YC, L4::Other(47)), Action::Allow);
}

#[test]
fn verdict_texts() {
    let set = policies(doc(
        FATHOM,
        "metadata: {name: no-ssh, namespace: y}\nspec:\n  podSelector: {}\n  ingress: [{action: deny, logLabel: ssh, ports: [{port: 22}]}]\n",
    ));
    let v = verdict(&set, XA, YA, tcp(22));
    assert_eq!(
        v.to_string(),
        "DENY ingress: denied by FathomNetworkPolicy y/no-ssh rule 0 [ssh]"
    );
}
