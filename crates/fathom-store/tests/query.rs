//! Round trips, every filter kind, time ranges, `last`, ordering — each checked against the
//! live path (`FlowFilter::matches` over the same records) as well as against hand-written
//! expectations.

mod common;

use common::*;
use fathom_model::filter::parse_cidr;
use fathom_model::{FlowEvent, FlowFilter, L4Protocol, Record, Timestamp};
use fathom_store::{SchemaState, Store};

fn fixture() -> Vec<Record> {
    let web1 = ep(
        "10.0.0.1",
        40000,
        Some("shop"),
        Some("web-1"),
        &[("app", "web"), ("tier", "front")],
    );
    let web2 = ep(
        "10.0.0.2",
        40001,
        Some("shop"),
        Some("web-2"),
        &[("app", "web")],
    );
    let db = ep(
        "10.0.1.9",
        5432,
        Some("data"),
        Some("db-0"),
        &[("app", "db"), ("tier", "back")],
    );
    let dns = ep(
        "fd00::53",
        53,
        Some("kube-system"),
        Some("coredns-x"),
        &[("k8s-app", "kube-dns")],
    );
    let client6 = ep("fd00::10", 41000, None, None, &[]);
    let world = ep("93.184.216.34", 443, None, None, &[]);
    vec![
        flow(
            T0 + 5 * SEC,
            web1.clone(),
            db.clone(),
            L4Protocol::Tcp,
            FlowEvent::Start,
        ),
        flow(
            T0 + SEC,
            web2.clone(),
            world.clone(),
            L4Protocol::Tcp,
            FlowEvent::End,
        ),
        flow(
            T0 + 3 * SEC,
            client6.clone(),
            dns.clone(),
            L4Protocol::Udp,
            FlowEvent::Update,
        ),
        l7(T0 + 3 * SEC, web1.clone(), db.clone(), Some("psql")),
        flow(
            T0 + 9 * SEC,
            web1.clone(),
            world.clone(),
            L4Protocol::Icmp,
            FlowEvent::End,
        ),
        drop_record(
            T0 + 7 * SEC,
            Some(world.clone()),
            Some(web2.clone()),
            Some(L4Protocol::Tcp),
            "NO_SOCKET",
        ),
        drop_record(T0 + 8 * SEC, None, None, None, "NETFILTER_DROP"),
        l7(T0 + 2 * SEC, client6, dns, None),
    ]
}

/// What the live path returns: matches, in time order (ties: insertion order), range, last.
fn live(
    records: &[Record],
    f: &FlowFilter,
    since: Option<u64>,
    until: Option<u64>,
    last: Option<usize>,
) -> Vec<Record> {
    let mut v: Vec<Record> = records
        .iter()
        .filter(|r| {
            let t = r.time().as_nanos();
            since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u) && f.matches(r)
        })
        .cloned()
        .collect();
    v.sort_by_key(|r| r.time());
    if let Some(n) = last {
        v.drain(..v.len().saturating_sub(n));
    }
    v
}

fn open_with(records: &[Record]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&cfg(dir.path())).unwrap();
    store.insert(records).unwrap();
    (dir, store)
}

fn check(store: &Store, records: &[Record], f: &FlowFilter, expect_times: &[u64]) {
    let got = store.query(f, None, None, None).unwrap();
    assert_eq!(
        got,
        live(records, f, None, None, None),
        "store and live disagree on {f:?}"
    );
    let times: Vec<u64> = got
        .iter()
        .map(|r| (r.time().as_nanos() - T0) / SEC)
        .collect();
    assert_eq!(times, expect_times, "filter {f:?}");
}

#[test]
fn every_field_survives_a_round_trip() {
    let records = fixture();
    let (_dir, store) = open_with(&records);
    let got = store
        .query(&FlowFilter::default(), None, None, None)
        .unwrap();
    let mut want = records.clone();
    want.sort_by_key(|r| r.time());
    assert_eq!(got, want);
    // Full structural equality above; spot-check the JSON of the richest flow too.
    let Record::Flow(f) = &got.iter().find(|r| matches!(r, Record::Flow(f) if f.source.pod.as_deref() == Some("web-1") && f.event == FlowEvent::Start)).unwrap() else {
        unreachable!()
    };
    assert_eq!(
        f.process
            .as_ref()
            .unwrap()
            .container_id
            .as_ref()
            .unwrap()
            .len(),
        64
    );
    assert_eq!(f.tcp.retransmits, Some(2));
    assert_eq!(
        f.first_seen.as_nanos() % SEC,
        123_456_789,
        "nanoseconds kept"
    );
    assert_eq!(store.rows(), records.len() as u64);
    assert_eq!(store.schema_state(), &SchemaState::Created);
    assert_eq!(
        store.time_range(),
        (
            Some(Timestamp::from_nanos(T0 + SEC)),
            Some(Timestamp::from_nanos(T0 + 9 * SEC))
        )
    );
}

#[test]
fn pod_filters() {
    let records = fixture();
    let (_dir, store) = open_with(&records);
    let pod = |s: &[&str]| s.iter().map(|p| p.parse().unwrap()).collect::<Vec<_>>();
    check(
        &store,
        &records,
        &FlowFilter {
            pod: pod(&["shop/web-1"]),
            ..Default::default()
        },
        &[3, 5, 9],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            pod: pod(&["shop/"]),
            ..Default::default()
        },
        &[1, 3, 5, 7, 9],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            pod: pod(&["web*"]),
            ..Default::default()
        },
        &[1, 3, 5, 7, 9],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            pod: pod(&["db-0", "coredns-x"]),
            ..Default::default()
        },
        &[2, 3, 3, 5],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            from_pod: pod(&["shop/web-1"]),
            ..Default::default()
        },
        &[3, 5, 9],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            to_pod: pod(&["shop/web-2"]),
            ..Default::default()
        },
        &[7],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            to_pod: pod(&["nowhere/"]),
            ..Default::default()
        },
        &[],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            from_pod: pod(&["shop/"]),
            to_pod: pod(&["data/"]),
            ..Default::default()
        },
        &[3, 5],
    );
}

#[test]
fn ip_and_cidr_filters() {
    let records = fixture();
    let (_dir, store) = open_with(&records);
    let nets = |s: &[&str]| s.iter().map(|n| parse_cidr(n).unwrap()).collect::<Vec<_>>();
    check(
        &store,
        &records,
        &FlowFilter {
            ip: nets(&["10.0.0.0/24"]),
            ..Default::default()
        },
        &[1, 3, 5, 7, 9],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            ip: nets(&["fd00::/64"]),
            ..Default::default()
        },
        &[2, 3],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            from_ip: nets(&["10.0.0.2"]),
            ..Default::default()
        },
        &[1],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            to_ip: nets(&["93.184.216.0/24", "fd00::53"]),
            ..Default::default()
        },
        &[1, 2, 3, 9],
    );
    // A drop without an IP header counts as 0.0.0.0 on both sides, as on the live path.
    check(
        &store,
        &records,
        &FlowFilter {
            ip: nets(&["0.0.0.0/32"]),
            ..Default::default()
        },
        &[8],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            ip: nets(&["::ffff:10.0.0.0/120"]),
            ..Default::default()
        },
        &[],
    );
}

#[test]
fn port_protocol_label_comm_type_event_reason_filters() {
    let records = fixture();
    let (_dir, store) = open_with(&records);
    check(
        &store,
        &records,
        &FlowFilter {
            port: vec![5432],
            ..Default::default()
        },
        &[3, 5],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            port: vec![53, 443],
            ..Default::default()
        },
        &[1, 2, 3, 7, 9],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            port: vec![0],
            ..Default::default()
        },
        &[8],
    );
    // L7 records pass a tcp/udp protocol filter; drops need their own protocol.
    check(
        &store,
        &records,
        &FlowFilter {
            protocol: vec![L4Protocol::Udp],
            ..Default::default()
        },
        &[2, 3, 3],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            protocol: vec![L4Protocol::Icmp],
            ..Default::default()
        },
        &[9],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            protocol: vec![L4Protocol::Tcp],
            ..Default::default()
        },
        &[1, 2, 3, 5, 7],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            label: vec!["app=db".parse().unwrap()],
            ..Default::default()
        },
        &[3, 5],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            label: vec!["app=web".parse().unwrap(), "tier".parse().unwrap()],
            ..Default::default()
        },
        &[3, 5, 9],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            label: vec!["k8s-app".parse().unwrap()],
            ..Default::default()
        },
        &[2, 3],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            comm: vec!["psql".into()],
            ..Default::default()
        },
        &[3],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            comm: vec!["nginx".into()],
            ..Default::default()
        },
        &[1, 3, 5, 9],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            r#type: vec!["l7".into(), "drop".into()],
            ..Default::default()
        },
        &[2, 3, 7, 8],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            event: vec![FlowEvent::End],
            ..Default::default()
        },
        &[1, 2, 3, 7, 8, 9],
    );
    check(
        &store,
        &records,
        &FlowFilter {
            reason: vec!["no_socket".into()],
            ..Default::default()
        },
        &[1, 2, 3, 3, 5, 7, 9],
    );
}

#[test]
fn since_until_last_and_order() {
    let records = fixture();
    let (_dir, store) = open_with(&records);
    let all = FlowFilter::default();
    let t = |s: u64| Some(Timestamp::from_nanos(T0 + s * SEC));
    let secs = |v: Vec<Record>| {
        v.iter()
            .map(|r| (r.time().as_nanos() - T0) / SEC)
            .collect::<Vec<_>>()
    };
    // Both bounds inclusive, like the live hub.
    assert_eq!(
        secs(store.query(&all, t(3), t(7), None).unwrap()),
        [3, 3, 5, 7]
    );
    assert_eq!(secs(store.query(&all, t(8), None, None).unwrap()), [8, 9]);
    assert_eq!(secs(store.query(&all, None, t(2), None).unwrap()), [1, 2]);
    assert_eq!(
        secs(store.query(&all, t(10), None, None).unwrap()),
        Vec::<u64>::new()
    );
    // last: the newest N, oldest first.
    assert_eq!(
        secs(store.query(&all, None, None, Some(3)).unwrap()),
        [7, 8, 9]
    );
    assert_eq!(
        secs(store.query(&all, t(2), t(5), Some(2)).unwrap()),
        [3, 5]
    );
    assert_eq!(store.query(&all, None, None, Some(0)).unwrap(), vec![]);
    assert_eq!(
        store.query(&all, None, None, Some(100)).unwrap().len(),
        records.len()
    );
    // Equal times keep insertion order (the flow at +3 s was inserted before the L7 record),
    // in full results and in `last` alike.
    let full = store.query(&all, t(3), t(3), None).unwrap();
    assert_eq!(
        full,
        live(&records, &all, Some(T0 + 3 * SEC), Some(T0 + 3 * SEC), None)
    );
    assert!(matches!(full[0], Record::Flow(_)) && matches!(full[1], Record::L7(_)));
    assert_eq!(store.query(&all, t(3), t(3), Some(1)).unwrap(), &full[1..]);
    let f = FlowFilter {
        pod: vec!["shop/".parse().unwrap()],
        ..Default::default()
    };
    assert_eq!(
        store.query(&f, None, None, Some(2)).unwrap(),
        live(&records, &f, None, None, Some(2))
    );
}

#[test]
fn out_of_order_inserts_come_back_in_time_order_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&cfg(dir.path())).unwrap();
    let mut all = Vec::new();
    for batch in 0..5u64 {
        let recs: Vec<Record> = (0..50u64)
            .map(|i| bulk_flow(i, T0 + ((i * 7919 + batch * 31) % 250) * SEC))
            .collect();
        store.insert(&recs).unwrap();
        all.extend(recs);
    }
    let got = store
        .query(&FlowFilter::default(), None, None, None)
        .unwrap();
    assert_eq!(got, live(&all, &FlowFilter::default(), None, None, None));
    assert!(got.windows(2).all(|w| w[0].time() <= w[1].time()));
}

#[test]
fn selective_filters_use_indexes() {
    let records = fixture();
    let (_dir, store) = open_with(&records);
    let plan = |f: &FlowFilter, last| store.explain(f, None, None, last).unwrap().join(" | ");
    let p = plan(
        &FlowFilter {
            pod: vec!["shop/web-1".parse().unwrap()],
            ..Default::default()
        },
        None,
    );
    assert!(
        p.contains("records_src_ep") && p.contains("records_dst_ep"),
        "{p}"
    );
    let p = plan(
        &FlowFilter {
            to_ip: vec![parse_cidr("10.0.0.0/8").unwrap()],
            ..Default::default()
        },
        None,
    );
    assert!(p.contains("records_dst_ip"), "{p}");
    let p = plan(&FlowFilter::default(), Some(100));
    assert!(p.contains("records_time"), "{p}");
    // A pod nobody has: answered without touching the records table.
    let p = plan(
        &FlowFilter {
            pod: vec!["ghost/".parse().unwrap()],
            ..Default::default()
        },
        None,
    );
    assert_eq!(p, "nothing can match");
}

#[test]
fn reader_sees_what_the_store_wrote() {
    let records = fixture();
    let (dir, store) = open_with(&records);
    let reader = fathom_store::StoreReader::open(dir.path().join("flows.db")).unwrap();
    let f = FlowFilter {
        label: vec!["app=web".parse().unwrap()],
        ..Default::default()
    };
    assert_eq!(
        reader.query(&f, None, None, None).unwrap(),
        store.query(&f, None, None, None).unwrap()
    );
    assert!(fathom_store::StoreReader::open(dir.path().join("missing.db")).is_err());
}

#[test]
fn query_each_streams_in_order_and_stops_when_told() {
    let records = fixture();
    let (_dir, store) = open_with(&records);
    let f = FlowFilter {
        r#type: vec!["flow".into()],
        ..Default::default()
    };
    let mut seen = Vec::new();
    store
        .query_each(&f, None, None, |r| {
            seen.push(r);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(seen, live(&records, &f, None, None, None));
    let mut first_two = Vec::new();
    store
        .query_each(&f, None, None, |r| {
            first_two.push(r);
            if first_two.len() == 2 {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(first_two, seen[..2]);
}
