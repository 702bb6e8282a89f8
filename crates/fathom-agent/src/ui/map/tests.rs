//! Exact service maps for small, hand-written record sets.

use super::*;
use fathom_model::l7::http::HttpExchange;
use fathom_model::l7::L7Record;
use fathom_model::l7::{ExchangeKind, L7Detail, L7Exchange};
use fathom_model::{DropRecord, Flow, FlowEndReason, FlowEvent, L4Protocol};
use fathom_model::{L4Info, ProcessInfo, TcpInfo, Traffic};
use serde_json::json;

const S: u64 = 1_000_000_000;

fn ep(ip: &str, port: u16, pod: Option<(&str, &str)>, labels: &[(&str, &str)]) -> Endpoint {
    Endpoint {
        ip: ip.parse().expect("test ip"),
        port,
        pod: pod.map(|p| p.1.to_string()),
        namespace: pod.map(|p| p.0.to_string()),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn a() -> Endpoint {
    ep("10.0.0.1", 40000, Some(("x", "a")), &[("app", "client")])
}

fn b(port: u16) -> Endpoint {
    ep("10.0.0.2", port, Some(("y", "b")), &[])
}

#[allow(clippy::too_many_arguments)]
fn flow(
    id: &str,
    t: u64,
    first: u64,
    event: FlowEvent,
    end: Option<FlowEndReason>,
    src: Endpoint,
    dst: Endpoint,
    bytes: (u64, u64),
) -> Record {
    Record::from(Flow {
        time: Timestamp(t * S),
        flow_id: id.into(),
        event,
        source: src,
        destination: dst,
        process: Some(ProcessInfo {
            pid: 7,
            comm: "curl".into(),
            ..Default::default()
        }),
        destination_process: None,
        l4: L4Info {
            protocol: L4Protocol::Tcp,
            tcp_flags: None,
            tcp_flags_out: None,
            tcp_flags_in: None,
            icmp_type: None,
            icmp_code: None,
        },
        traffic: Traffic {
            packets_out: bytes.0 / 100,
            packets_in: bytes.1 / 100,
            bytes_out: bytes.0,
            bytes_in: bytes.1,
            payload_bytes_out: 0,
            payload_bytes_in: 0,
        },
        tcp: TcpInfo::default(),
        first_seen: Timestamp(first * S),
        last_seen: Timestamp(t * S),
        end_reason: end,
        interface: None,
        node: "n".into(),
    })
}

fn drop(t: u64, src: Option<Endpoint>, dst: Option<Endpoint>, suppressed: u32) -> Record {
    drop_of("NO_SOCKET", t, src, dst, suppressed)
}

fn drop_of(
    reason: &str,
    t: u64,
    src: Option<Endpoint>,
    dst: Option<Endpoint>,
    suppressed: u32,
) -> Record {
    Record::from(DropRecord {
        time: Timestamp(t * S),
        reason: reason.into(),
        reason_code: 3,
        location: "__udp4_lib_rcv+0x5a".into(),
        interface: None,
        netns: None,
        source: src,
        destination: dst,
        protocol: Some(L4Protocol::Udp),
        length: 29,
        suppressed,
        node: "n".into(),
    })
}

fn http(t: u64, latency_ms: u64, status: u16) -> Record {
    let detail = HttpExchange {
        method: Some("GET".into()),
        path: Some("/".into()),
        status: Some(status),
        ..Default::default()
    };
    Record::from(L7Record {
        time: Timestamp(t * S),
        source: a(),
        destination: b(80),
        process: None,
        flow_id: Some("f1".into()),
        tls_plaintext: false,
        exchange: L7Exchange {
            kind: ExchangeKind::RequestResponse,
            request_time: None,
            response_time: None,
            latency_ns: Some(latency_ms * 1_000_000),
            request_bytes: 70,
            response_bytes: 500,
            status: Some(status.to_string()),
            error: status >= 500,
            detail: L7Detail::Http(detail),
        },
    })
}

fn world(ip: &str) -> Endpoint {
    ep(ip, 443, None, &[])
}

#[test]
fn flows_drops_and_l7_become_exact_nodes_and_edges() {
    use FlowEvent::*;
    let recs = vec![
        // Before the window: ignored entirely.
        flow(
            "f0",
            10,
            10,
            End,
            Some(FlowEndReason::Fin),
            a(),
            b(80),
            (1, 1),
        ),
        // f1 starts and ends in the window: its end record's counters count, once.
        flow("f1", 100, 100, Start, None, a(), b(80), (100, 0)),
        flow(
            "f1",
            101,
            100,
            End,
            Some(FlowEndReason::Fin),
            a(),
            b(80),
            (500, 4000),
        ),
        // f2 started before the window and was reset in it.
        flow(
            "f2",
            105,
            50,
            End,
            Some(FlowEndReason::Rst),
            a(),
            b(80),
            (200, 0),
        ),
        // f3 is alive, to an external address.
        flow(
            "f3",
            110,
            30,
            Update,
            None,
            a(),
            world("203.0.113.9"),
            (300, 900),
        ),
        drop(102, Some(a()), Some(b(7777)), 2),
        drop(103, None, None, 0),
        http(104, 2, 200),
        http(106, 10, 503),
        // A reply the server's socket purged at close: on the conversation's edge, as benign.
        drop_of("QUEUE_PURGE", 107, Some(b(80)), Some(a()), 0),
        // Router solicitation between link-local addresses: not a service, not on the map.
        flow(
            "ll",
            108,
            108,
            Start,
            None,
            world("fe80::1"),
            world("ff02::2"),
            (56, 0),
        ),
    ];
    let m = aggregate(&recs, Timestamp(60 * S), Timestamp(120 * S), Grouping::Pod);
    let got = serde_json::to_value(&m).expect("map json");
    assert_eq!(
        got["nodes"],
        json!([
            {"id": "203.0.113.9", "label": "203.0.113.9", "namespace": null, "kind": "ip",
             "flows_out": 0, "flows_in": 1, "bytes_sent": 900, "bytes_received": 300, "drops": 0, "benign_drops": 0},
            {"id": "x/a", "label": "a", "namespace": "x", "kind": "pod", "labels": {"app": "client"},
             "flows_out": 3, "flows_in": 0, "bytes_sent": 1000, "bytes_received": 4900, "drops": 3, "benign_drops": 1},
            {"id": "y/b", "label": "b", "namespace": "y", "kind": "pod",
             "flows_out": 0, "flows_in": 2, "bytes_sent": 4000, "bytes_received": 700, "drops": 3, "benign_drops": 1},
        ])
    );
    assert_eq!(
        got["edges"],
        json!([
            {"id": "x/a->203.0.113.9", "source": "x/a", "target": "203.0.113.9",
             "ports": ["tcp/443"], "flows": 1, "new_flows": 0, "flow_rate": 0.0, "active": 1,
             "resets": 0, "bytes_out": 300, "bytes_in": 900, "packets_out": 3, "packets_in": 9,
             "drops": 0, "benign_drops": 0, "drop_reasons": {}, "l7": null, "verdicts": {},
             "status": "ok"},
            {"id": "x/a->y/b", "source": "x/a", "target": "y/b",
             "ports": ["tcp/80", "udp/7777"], "flows": 2, "new_flows": 1, "flow_rate": 1.0 / 60.0,
             "active": 0, "resets": 1, "bytes_out": 700, "bytes_in": 4000, "packets_out": 7,
             "packets_in": 40, "drops": 3, "benign_drops": 1,
             "drop_reasons": {"NO_SOCKET": 3, "QUEUE_PURGE": 1},
             "l7": {"protocols": ["http"], "requests": 2, "errors": 1, "error_rate": 0.5,
                    "latency_p50_ms": 2.0, "latency_p95_ms": 10.0},
             "verdicts": {}, "status": "drop"},
        ])
    );
    assert_eq!(
        got["totals"],
        json!({"records": 10, "flows": 3, "drops": 5, "drops_unattributed": 1, "l7_requests": 2,
               "l7_errors": 1, "verdicts": 0, "local": 1, "other": 0})
    );
    assert_eq!(got["window_seconds"], 60);
}

#[test]
fn workloads_fold_pods_and_external_ips_overflow_into_world() {
    let web = |pod: &str| ep("10.0.0.9", 80, Some(("y", pod)), &[]);
    let mut recs = vec![
        flow(
            "w1",
            5,
            5,
            FlowEvent::Start,
            None,
            a(),
            web("web-7d9c8f6b5-x2k4q"),
            (1, 1),
        ),
        flow(
            "w2",
            5,
            5,
            FlowEvent::Start,
            None,
            a(),
            web("web-7d9c8f6b5-abc12"),
            (1, 1),
        ),
    ];
    // One more external address than get a node: the one seen least (ties: the highest address)
    // goes to `world`. 203.0.113.1 is seen twice, so it keeps its node.
    for i in 0..=MAX_IP_NODES {
        let id = format!("e{i}");
        let dst = world(&format!("203.0.113.{}", i + 1));
        recs.push(flow(&id, 6, 6, FlowEvent::Start, None, a(), dst, (1, 1)));
    }
    recs.push(flow(
        "e-again",
        7,
        7,
        FlowEvent::Start,
        None,
        a(),
        world("203.0.113.1"),
        (1, 1),
    ));
    let m = aggregate(&recs, Timestamp(0), Timestamp(10 * S), Grouping::Workload);
    let ids: Vec<&str> = m.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids.len(), MAX_IP_NODES + 3, "{ids:?}");
    assert!(ids.contains(&"x/client") && ids.contains(&"y/web") && ids.contains(&WORLD));
    assert!(ids.contains(&"203.0.113.1"));
    let last = format!("203.0.113.{}", MAX_IP_NODES + 1);
    assert!(!ids.contains(&last.as_str()), "{last} folds into world");
    let web = m
        .nodes
        .iter()
        .find(|n| n.id == "y/web")
        .expect("web workload");
    assert_eq!(web.kind, NodeKind::Workload);
    assert_eq!(
        web.pods.iter().map(String::as_str).collect::<Vec<_>>(),
        ["y/web-7d9c8f6b5-abc12", "y/web-7d9c8f6b5-x2k4q"]
    );
    let e = m
        .edges
        .iter()
        .find(|e| e.id == "x/client->y/web")
        .expect("workload edge");
    assert_eq!((e.flows, e.bytes_out), (2, 2));
    let w = m
        .edges
        .iter()
        .find(|e| e.target == WORLD)
        .expect("world edge");
    assert_eq!(w.flows, 1);
}

#[test]
fn workload_names() {
    let pod = |labels: &[(&str, &str)]| ep("10.0.0.1", 1, Some(("n", "p")), labels);
    assert_eq!(workload_name(&pod(&[("app", "api")]), "api-1"), "api");
    assert_eq!(workload_name(&pod(&[]), "web-7d9c8f6b5-x2k4q"), "web");
    assert_eq!(
        workload_name(&pod(&[]), "node-exporter-5xk2p"),
        "node-exporter"
    );
    assert_eq!(workload_name(&pod(&[]), "db-0"), "db");
    assert_eq!(workload_name(&pod(&[]), "client"), "client");
    assert_eq!(workload_name(&pod(&[]), "front-end"), "front-end");
}

#[test]
fn verdicts_are_read_from_any_shape() {
    assert_eq!(
        verdict_action(&json!({"action": "DENY"})).as_deref(),
        Some("deny")
    );
    assert_eq!(
        verdict_action(&json!({"verdict": "Allow"})).as_deref(),
        Some("allow")
    );
    assert_eq!(
        verdict_action(&json!({"verdict": {"action": "Audit", "reason": "AuditDeniedBy"}}))
            .as_deref(),
        Some("audit")
    );
    assert_eq!(verdict_action(&json!({"type": "flow"})), None);

    // Counted on their edge, a deny colours it like a drop.
    let mut ips = BTreeSet::new();
    ips.insert("unused".to_string());
    let mut bld = Builder::new(Grouping::Pod, Timestamp(0), &ips);
    bld.add_verdict(&a(), &b(80), "deny".into());
    bld.add_verdict(&a(), &b(80), "allow".into());
    let m = bld.finish(Timestamp(0), Timestamp(S));
    assert_eq!(m.edges.len(), 1);
    assert_eq!(m.edges[0].status, EdgeStatus::Drop);
    assert_eq!(
        m.edges[0].verdicts,
        BTreeMap::from([("allow".to_string(), 1), ("deny".to_string(), 1)])
    );
    assert_eq!(m.totals.verdicts, 2);
}

#[test]
fn percentiles_use_nearest_rank() {
    assert_eq!(percentile_ms(&[], 50), None);
    assert_eq!(percentile_ms(&[1_000_000], 95), Some(1.0));
    let v: Vec<u64> = (1..=100).map(|i| i * 1_000_000).collect();
    assert_eq!(percentile_ms(&v, 50), Some(50.0));
    assert_eq!(percentile_ms(&v, 95), Some(95.0));
}
