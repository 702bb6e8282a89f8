//! The store's answer is the live path's answer: for random records (flows, L7, drops) and
//! random filters, `Store::query` returns exactly what filtering the records with
//! `FlowFilter::matches`, the time range and `last` returns, in the same order.
//!
//! Values come from small pools so that filters hit often and records share pods, IPs,
//! ports and times (ties exercise the ordering rule).

mod common;

use std::collections::BTreeMap;

use common::*;
use fathom_model::filter::{parse_cidr, LabelSelector};
use fathom_model::l7::L7Protocol;
use fathom_model::l7filter::L7Filter;
use fathom_model::{Endpoint, FlowEvent, FlowFilter, L4Protocol, PodSelector, Record, Timestamp};
use fathom_store::Store;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

const IPS: &[&str] = &[
    "10.0.0.1",
    "10.0.0.2",
    "10.0.1.7",
    "192.168.1.1",
    "0.0.0.0",
    "fd00::1",
    "fd00::2",
    "::ffff:10.0.0.1",
    "2001:db8::9",
];
const PORTS: &[u16] = &[0, 53, 80, 443, 5432, 40000];
const PODS: &[(Option<&str>, Option<&str>)] = &[
    (None, None),
    (Some("shop"), Some("web-1")),
    (Some("shop"), Some("web-2")),
    (Some("prod"), Some("web-1")),
    (Some("data"), Some("db-0")),
    (None, Some("lonely")),
    (Some("shop"), None),
];
const LABELS: &[(&str, &str)] = &[
    ("app", "web"),
    ("app", "db"),
    ("tier", "front"),
    ("env", "prod"),
];
const COMMS: &[&str] = &["curl", "nginx", "postgres"];
const PROTOS: &[L4Protocol] = &[
    L4Protocol::Tcp,
    L4Protocol::Udp,
    L4Protocol::Icmp,
    L4Protocol::Icmpv6,
    L4Protocol::Sctp,
    L4Protocol::Other(47),
];
const EVENTS: &[FlowEvent] = &[FlowEvent::Start, FlowEvent::Update, FlowEvent::End];
const REASONS: &[&str] = &["NO_SOCKET", "NETFILTER_DROP"];

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (
        select(IPS),
        select(PORTS),
        select(PODS),
        subsequence(LABELS, 0..=2),
    )
        .prop_map(|(ip, port, (ns, pod), labels)| {
            let mut e = ep(ip, port, ns, pod, &[]);
            e.labels = labels
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>();
            e
        })
}

fn record() -> impl Strategy<Value = Record> {
    // Seconds from a small range, plus a sub-second part that is often zero: many ties.
    let time = (0u64..40, prop_oneof![Just(0u64), 0u64..SEC]).prop_map(|(s, ns)| T0 + s * SEC + ns);
    let comm = proptest::option::of(select(COMMS));
    prop_oneof![
        5 => (time.clone(), endpoint(), endpoint(), select(PROTOS), select(EVENTS), comm.clone(), comm.clone())
            .prop_map(|(t, s, d, p, e, c1, c2)| {
                let mut r = flow(t, s, d, p, e);
                if let Record::Flow(f) = &mut r {
                    f.process = c1.map(|c| process(c, 10));
                    f.destination_process = c2.map(|c| process(c, 20));
                }
                r
            }),
        2 => (time.clone(), endpoint(), endpoint(), comm).prop_map(|(t, s, d, c)| l7(t, s, d, c)),
        2 => (time, proptest::option::of(endpoint()), proptest::option::of(endpoint()),
              proptest::option::of(select(PROTOS)), select(REASONS))
            .prop_map(|(t, s, d, p, reason)| drop_record(t, s, d, p, reason)),
    ]
}

/// Each kind of filter is empty most of the time, so combinations stay satisfiable.
fn some_of<T: Clone + std::fmt::Debug + 'static>(pool: Vec<T>) -> impl Strategy<Value = Vec<T>> {
    prop_oneof![3 => Just(Vec::new()), 1 => subsequence(pool, 1..=2)]
}

fn filter() -> impl Strategy<Value = FlowFilter> {
    let pods: Vec<PodSelector> = [
        "shop/web-1",
        "shop/",
        "web*",
        "web-1",
        "data/db-0",
        "lonely",
        "ghost/",
        "prod/w*",
    ]
    .iter()
    .map(|s| s.parse().expect("selector"))
    .collect();
    let nets: Vec<_> = [
        "10.0.0.0/24",
        "10.0.0.1",
        "0.0.0.0/0",
        "0.0.0.0/32",
        "fd00::/64",
        "::ffff:0:0/96",
        "::/0",
        "192.168.0.0/16",
    ]
    .iter()
    .map(|s| parse_cidr(s).expect("cidr"))
    .collect();
    let labels: Vec<LabelSelector> = ["app=web", "app", "tier=front", "env=prod", "missing"]
        .iter()
        .map(|s| s.parse().expect("label"))
        .collect();
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    (
        (some_of(pods.clone()), some_of(pods.clone()), some_of(pods)),
        (some_of(nets.clone()), some_of(nets.clone()), some_of(nets)),
        some_of(PORTS.to_vec()),
        some_of(PROTOS.to_vec()),
        some_of(labels),
        some_of(strings(&["curl", "nginx", "postgres", "sshd"])),
        some_of(strings(&["flow", "l7", "drop", "alert"])),
        some_of(EVENTS.to_vec()),
        some_of(strings(&["no_socket", "NETFILTER_DROP", "OTHER"])),
        (
            some_of(vec![L7Protocol::Dns, L7Protocol::Http]),
            some_of(strings(&[
                "db.data.svc.cluster.local",
                "*.cluster.local",
                "other.local",
            ])),
        ),
    )
        .prop_map(
            |(
                (pod, from_pod, to_pod),
                (ip, from_ip, to_ip),
                port,
                protocol,
                label,
                comm,
                r#type,
                event,
                reason,
                (l7_protocol, dns_query),
            )| {
                FlowFilter {
                    pod,
                    from_pod,
                    to_pod,
                    ip,
                    from_ip,
                    to_ip,
                    port,
                    protocol,
                    label,
                    comm,
                    r#type,
                    event,
                    reason,
                    verdict: Vec::new(),
                    l7: L7Filter {
                        protocol: l7_protocol,
                        dns_query,
                        ..Default::default()
                    },
                }
            },
        )
}

#[derive(Debug, Clone)]
struct Query {
    filter: FlowFilter,
    since: Option<u64>,
    until: Option<u64>,
    last: Option<usize>,
}

fn query() -> impl Strategy<Value = Query> {
    let bound = proptest::option::weighted(0.3, (0u64..42).prop_map(|s| T0 + s * SEC));
    (
        filter(),
        bound.clone(),
        bound,
        proptest::option::weighted(0.3, 0usize..8),
    )
        .prop_map(|(filter, since, until, last)| Query {
            filter,
            since,
            until,
            last,
        })
}

fn live(records: &[Record], q: &Query) -> Vec<Record> {
    let mut v: Vec<Record> = records
        .iter()
        .filter(|r| {
            let t = r.time().as_nanos();
            q.since.is_none_or(|s| t >= s) && q.until.is_none_or(|u| t <= u) && q.filter.matches(r)
        })
        .cloned()
        .collect();
    v.sort_by_key(|r| r.time()); // stable: ties stay in insertion order
    if let Some(n) = q.last {
        v.drain(..v.len().saturating_sub(n));
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn store_query_equals_live_filter(
        batches in vec(vec(record(), 0..25), 1..4),
        queries in vec(query(), 1..12),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&cfg(dir.path())).unwrap();
        for b in &batches {
            store.insert(b).unwrap();
        }
        let records: Vec<Record> = batches.concat();
        for q in &queries {
            let got = store.query(
                &q.filter,
                q.since.map(Timestamp::from_nanos),
                q.until.map(Timestamp::from_nanos),
                q.last,
            ).unwrap();
            prop_assert_eq!(got, live(&records, q), "query {:?}", q);
        }
    }
}
