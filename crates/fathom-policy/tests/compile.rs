//! Compiler output: exact entries for a small scenario, capacity refusal, identity stability.

mod common;

use common::*;
use fathom_policy::abi::{PolicyMapKey, ACTION_DENY, DIRECTION_INGRESS, LEVEL_EXACT};
use fathom_policy::{
    compile, Action, CompileError, CompileOptions, DecisionId, Direction, Endpoint, EndpointId,
    Endpoints, Identity, IdentityAllocator, L4Prefix, PolicyKey, PortProtocol, Reason,
};

const SCENARIO: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-in, namespace: x}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
---
apiVersion: fathom.dev/v1alpha1
kind: FathomNetworkPolicy
metadata: {name: no-exfil, namespace: x}
spec:
  podSelector: {matchLabels: {app: web}}
  egress:
  - action: deny
    to: [{ipBlock: {cidr: 192.0.2.0/24}}]
";

fn scenario_endpoints(web_id: u32, db_id: u32, db_first: bool) -> Endpoints {
    let mut e = Endpoints::new();
    e.add_host_ip(ip("10.0.9.9")).expect("host");
    let web = Endpoint::new(web_id, "x", "web")
        .label("app", "web")
        .ip(ip("10.0.0.1"))
        .port("http", 8080, PortProtocol::Tcp);
    let db = Endpoint::new(db_id, "x", "db")
        .label("app", "db")
        .ip(ip("10.0.0.2"));
    let (first, second) = if db_first { (db, web) } else { (web, db) };
    e.add_endpoint(first).expect("endpoint");
    e.add_endpoint(second).expect("endpoint");
    e
}

fn key(ep: u32, direction: Direction, peer: u32, l4: L4Prefix) -> PolicyKey {
    PolicyKey {
        endpoint: EndpointId(ep),
        direction,
        peer: Identity(peer),
        l4,
    }
}

#[test]
fn small_scenario_exact_entries() {
    let set = policies(SCENARIO);
    let eps = scenario_endpoints(1, 2, false);
    let c = compile(
        &set,
        &eps,
        &mut IdentityAllocator::new(),
        &CompileOptions::default(),
    )
    .expect("compile");

    // Identities: label sets in order, so db (k8s:app=db) < web (k8s:app=web); CIDR ids from 2^24.
    let (db, web, cidr) = (256, 257, 1 << 24);
    assert_eq!(c.endpoint_identity(EndpointId(2)), Some(Identity(db)));
    assert_eq!(c.endpoint_identity(EndpointId(1)), Some(Identity(web)));

    let any = L4Prefix::ANY;
    let tcp5432 = L4Prefix::new(24, 6, 5432);
    let got: Vec<(PolicyKey, Action, u32, u8)> = c
        .entries()
        .iter()
        .map(|e| (e.key, e.action, e.decision.0, e.levels))
        .collect();
    let host = Identity::HOST.0;
    let expected = vec![
        // web: the host entries; egress to the CIDR identity is denied (no isolation: deny-only).
        (key(1, Direction::Ingress, host, any), Action::Allow, 1, 0),
        (key(1, Direction::Egress, host, any), Action::Allow, 2, 0),
        (key(1, Direction::Egress, cidr, any), Action::Deny, 3, 0),
        // db: ingress isolated: wildcard root = default deny; web's root (default deny too)
        // says an exact-port entry exists: web on TCP 5432 allowed.
        (key(2, Direction::Ingress, 0, any), Action::Deny, 4, 0),
        (key(2, Direction::Ingress, host, any), Action::Allow, 1, 0),
        (
            key(2, Direction::Ingress, web, any),
            Action::Deny,
            4,
            LEVEL_EXACT,
        ),
        (
            key(2, Direction::Ingress, web, tcp5432),
            Action::Allow,
            5,
            0,
        ),
        (key(2, Direction::Egress, host, any), Action::Allow, 2, 0),
    ];
    assert_eq!(got, expected);

    let reasons: Vec<(Direction, Reason, Vec<String>)> = c
        .decisions()
        .map(|(_, v)| {
            (
                v.direction,
                v.reason,
                v.policies.iter().map(ToString::to_string).collect(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            (Direction::Ingress, Reason::Host, vec![]),
            (Direction::Egress, Reason::Host, vec![]),
            (
                Direction::Egress,
                Reason::DeniedBy,
                vec!["FathomNetworkPolicy x/no-exfil rule 0".to_string()]
            ),
            (
                Direction::Ingress,
                Reason::DefaultDeny,
                vec!["NetworkPolicy x/db-in".to_string()]
            ),
            (
                Direction::Ingress,
                Reason::AllowedBy,
                vec!["NetworkPolicy x/db-in rule 0".to_string()]
            ),
        ]
    );
    assert!(c.decision(DecisionId(0)).is_none(), "0 means no entry");

    let ipcache: Vec<(String, u32)> = c
        .ipcache()
        .iter()
        .map(|(n, i)| (n.to_string(), i.0))
        .collect();
    assert_eq!(
        ipcache,
        vec![
            ("0.0.0.0/0".to_string(), Identity::WORLD.0),
            ("10.0.0.1/32".to_string(), web),
            ("10.0.0.2/32".to_string(), db),
            ("10.0.9.9/32".to_string(), host),
            ("192.0.2.0/24".to_string(), cidr),
            ("::/0".to_string(), Identity::WORLD.0),
        ]
    );

    // The bytes the kernel map gets for the root entry of db's ingress.
    let (k, v) = c.policy_map_entries()[3];
    assert_eq!(
        k,
        PolicyMapKey {
            prefixlen: 72,
            endpoint_id: 2,
            peer_identity: 0,
            direction: DIRECTION_INGRESS,
            protocol: 0,
            dport: [0, 0]
        }
    );
    assert_eq!((v.action, v.decision_id), (ACTION_DENY, 4));
    let (k, v) = c.policy_map_entries()[5];
    assert_eq!((k.prefixlen, k.peer_identity), (72, web));
    assert_eq!(
        (v.action, v.levels, v.decision_id),
        (ACTION_DENY, LEVEL_EXACT, 4)
    );
    let (k, _) = c.policy_map_entries()[6];
    assert_eq!(
        (k.prefixlen, k.protocol, k.dport),
        (96, 6, 5432u16.to_be_bytes())
    );
    assert_eq!(c.ipcache_map_entries().len(), 6);
}

#[test]
fn capacity_is_refused_not_truncated() {
    let set = policies(SCENARIO);
    let eps = scenario_endpoints(1, 2, false);
    let opts = CompileOptions {
        policy_map_capacity: 6,
        ..CompileOptions::default()
    };
    let err = compile(&set, &eps, &mut IdentityAllocator::new(), &opts).expect_err("too big");
    assert_eq!(
        err,
        CompileError::Capacity {
            map: "policy",
            needed: 8,
            capacity: 6,
            largest: "x/db (endpoint 2) 5, x/web (endpoint 1) 3".to_string()
        }
    );
    assert_eq!(
        err.to_string(),
        "policy map needs 8 entries but holds at most 6; refusing to load a truncated policy (largest: x/db (endpoint 2) 5, x/web (endpoint 1) 3)"
    );
    let opts = CompileOptions {
        ipcache_capacity: 5,
        ..CompileOptions::default()
    };
    let err = compile(&set, &eps, &mut IdentityAllocator::new(), &opts).expect_err("too big");
    assert!(
        matches!(
            err,
            CompileError::Capacity {
                map: "ipcache",
                needed: 6,
                capacity: 5,
                ..
            }
        ),
        "{err}"
    );
    // Exactly at capacity is fine.
    let opts = CompileOptions {
        policy_map_capacity: 8,
        ipcache_capacity: 6,
    };
    assert!(compile(&set, &eps, &mut IdentityAllocator::new(), &opts).is_ok());
}

#[test]
fn identities_do_not_depend_on_endpoint_order_or_ids() {
    let set = policies(SCENARIO);
    let a = compile(
        &set,
        &scenario_endpoints(1, 2, false),
        &mut IdentityAllocator::new(),
        &CompileOptions::default(),
    )
    .expect("compile");
    let b = compile(
        &set,
        &scenario_endpoints(20, 10, true),
        &mut IdentityAllocator::new(),
        &CompileOptions::default(),
    )
    .expect("compile");
    assert_eq!(
        a.endpoint_identity(EndpointId(1)),
        b.endpoint_identity(EndpointId(20)),
        "web"
    );
    assert_eq!(
        a.endpoint_identity(EndpointId(2)),
        b.endpoint_identity(EndpointId(10)),
        "db"
    );
}

#[test]
fn identities_are_stable_across_compiles_sharing_an_allocator() {
    let set = policies(SCENARIO);
    let mut alloc = IdentityAllocator::new();
    let mut eps = scenario_endpoints(1, 2, false);
    let first = compile(&set, &eps, &mut alloc, &CompileOptions::default()).expect("compile");
    // A new pod with labels that sort first must not renumber the others.
    eps.add_endpoint(
        Endpoint::new(3, "x", "aaa")
            .label("app", "aaa")
            .ip(ip("10.0.0.3")),
    )
    .expect("endpoint");
    // A second web replica shares web's identity.
    eps.add_endpoint(
        Endpoint::new(4, "x", "web-2")
            .label("app", "web")
            .ip(ip("10.0.0.4"))
            .port("http", 8080, PortProtocol::Tcp),
    )
    .expect("endpoint");
    let second = compile(&set, &eps, &mut alloc, &CompileOptions::default()).expect("compile");
    for id in [1, 2] {
        assert_eq!(
            first.endpoint_identity(EndpointId(id)),
            second.endpoint_identity(EndpointId(id))
        );
    }
    assert_eq!(
        second.endpoint_identity(EndpointId(4)),
        second.endpoint_identity(EndpointId(1))
    );
    assert_eq!(
        second.endpoint_identity(EndpointId(3)),
        Some(Identity(258)),
        "next pod id; CIDR ids have their own range"
    );
}

#[test]
fn derived_labels_split_identities_only_when_policies_need_it() {
    // Two replicas with equal labels share an identity ...
    let mut eps = Endpoints::new();
    eps.add_endpoint(
        Endpoint::new(1, "x", "a")
            .label("app", "api")
            .ip(ip("10.0.0.1"))
            .port("http", 80, PortProtocol::Tcp),
    )
    .expect("endpoint");
    eps.add_endpoint(
        Endpoint::new(2, "x", "b")
            .label("app", "api")
            .ip(ip("10.0.1.1"))
            .port("http", 8080, PortProtocol::Tcp),
    )
    .expect("endpoint");
    let none = policies("");
    let c = compile(
        &none,
        &eps,
        &mut IdentityAllocator::new(),
        &CompileOptions::default(),
    )
    .expect("compile");
    assert_eq!(
        c.endpoint_identity(EndpointId(1)),
        c.endpoint_identity(EndpointId(2))
    );
    // ... until an ipBlock separates their addresses, or an egress rule uses their named port.
    let block = policies(format!(
        "{K8S}metadata: {{name: p, namespace: x}}\nspec:\n  podSelector: {{}}\n  ingress: [{{from: [{{ipBlock: {{cidr: 10.0.0.0/24}}}}]}}]\n"
    ));
    let c = compile(
        &block,
        &eps,
        &mut IdentityAllocator::new(),
        &CompileOptions::default(),
    )
    .expect("compile");
    assert_ne!(
        c.endpoint_identity(EndpointId(1)),
        c.endpoint_identity(EndpointId(2))
    );
    let named = policies(format!(
        "{K8S}metadata: {{name: p, namespace: x}}\nspec:\n  podSelector: {{}}\n  policyTypes: [Egress]\n  egress: [{{ports: [{{port: http}}]}}]\n"
    ));
    let c = compile(
        &named,
        &eps,
        &mut IdentityAllocator::new(),
        &CompileOptions::default(),
    )
    .expect("compile");
    assert_ne!(
        c.endpoint_identity(EndpointId(1)),
        c.endpoint_identity(EndpointId(2))
    );
}
