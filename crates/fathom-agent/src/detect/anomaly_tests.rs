//! Anomaly baselines with synthetic flows and a fake clock (the records' times).

use std::time::Duration;

use fathom_model::{
    Alert, Endpoint, Flow, FlowEvent, L4Info, L4Protocol, TcpFlags, TcpInfo, Timestamp, Traffic,
};

use super::anomaly::{AnomalyConfig, AnomalyDetector, Ewma};

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_000_000 * SEC;

fn pod(ip: &str, port: u16, ns: &str, app: &str) -> Endpoint {
    let mut e = Endpoint::new(ip.parse().unwrap(), port);
    e.namespace = Some(ns.into());
    e.pod = Some(format!("{app}-1"));
    e.labels.insert("app".into(), app.into());
    e
}

fn flow(t: u64, ev: FlowEvent, src: Endpoint, dst: Endpoint, answered: bool, bytes: u64) -> Flow {
    Flow {
        time: Timestamp::from_nanos(t),
        flow_id: format!("{t}"),
        event: ev,
        source: src,
        destination: dst,
        process: None,
        destination_process: None,
        l4: L4Info {
            protocol: L4Protocol::Tcp,
            tcp_flags: None,
            tcp_flags_out: Some(TcpFlags(TcpFlags::SYN)),
            tcp_flags_in: answered.then_some(TcpFlags(TcpFlags::SYN | TcpFlags::ACK)),
            icmp_type: None,
            icmp_code: None,
        },
        traffic: Traffic {
            bytes_out: bytes,
            ..Default::default()
        },
        tcp: TcpInfo::default(),
        first_seen: Timestamp::from_nanos(t),
        last_seen: Timestamp::from_nanos(t),
        end_reason: None,
        interface: None,
        node: "n".into(),
    }
}

fn cfg() -> AnomalyConfig {
    AnomalyConfig {
        bucket: Duration::from_secs(60),
        learning_buckets: 10,
        learning: Duration::from_secs(600),
        ..Default::default()
    }
}

fn web() -> Endpoint {
    pod("10.0.0.1", 0, "shop", "web")
}
fn db() -> Endpoint {
    pod("10.0.0.2", 5432, "shop", "db")
}

/// `n` connections web → db spread over the bucket starting at `start`.
fn bucket(d: &mut AnomalyDetector, start: u64, n: u64) -> Vec<Alert> {
    let mut out = Vec::new();
    for i in 0..n {
        let t = start + 1 + i * (59 * SEC / n.max(1));
        d.observe(
            &flow(t, FlowEvent::Start, web(), db(), true, 0),
            "n",
            &mut out,
        );
    }
    out
}

#[test]
fn ewma_mean_and_variance() {
    let mut e = Ewma::default();
    for _ in 0..50 {
        e.update(10.0, 0.1);
    }
    assert_eq!((e.mean, e.var, e.n), (10.0, 0.0, 50));
    e.update(20.0, 0.1);
    assert!((e.mean - 11.0).abs() < 1e-9);
    assert!((e.var - 0.9 * (0.1 * 100.0)).abs() < 1e-9);
}

#[test]
fn a_connection_surge_alerts_only_after_learning() {
    let mut d = AnomalyDetector::new(cfg());
    let mut alerts = Vec::new();
    // A surge during learning (bucket 3) is silent.
    for b in 0..12u64 {
        let n = if b == 3 { 30 } else { 10 };
        alerts.extend(bucket(&mut d, T0 + b * 60 * SEC, n));
    }
    let surge: Vec<_> = alerts
        .iter()
        .filter(|a| a.details.get("anomaly").map(String::as_str) == Some("connections_rate"))
        .collect();
    assert!(surge.is_empty(), "{surge:#?}");

    // After learning: a normal bucket is quiet, a surge alerts when its bucket closes.
    let mut out = bucket(&mut d, T0 + 12 * 60 * SEC, 10);
    out.extend(bucket(&mut d, T0 + 13 * 60 * SEC, 200));
    out.extend(bucket(&mut d, T0 + 14 * 60 * SEC, 10)); // closes bucket 13
    let surge: Vec<&Alert> = out
        .iter()
        .filter(|a| a.details.get("anomaly").map(String::as_str) == Some("connections_rate"))
        .collect();
    assert_eq!(surge.len(), 1, "{out:#?}");
    let a = surge[0];
    assert_eq!(a.kind, "anomaly");
    assert_eq!(a.evidence["value"], 200.0);
    assert_eq!(a.details["pair"], "shop/web -> shop/db");
    let mean = a.evidence["mean"];
    let limit = a.evidence["limit"];
    assert!(mean > 10.0 && mean < 12.0, "mean {mean}");
    assert!((limit - (mean + 4.0 * a.evidence["stddev"].max(5.0))).abs() < 1e-9);
    // Buckets are aligned on the first record (T0 + 1 ns): bucket 13 ends at T0 + 1 + 14 min.
    assert_eq!(a.time.as_nanos(), T0 + 1 + 14 * 60 * SEC);
}

#[test]
fn new_destinations_and_ports_alert_once_after_learning() {
    let mut d = AnomalyDetector::new(cfg());
    let mut out = Vec::new();
    // Learning: web talks to db and to one external address; db answers on 5432.
    d.observe(
        &flow(T0, FlowEvent::Start, web(), db(), true, 0),
        "n",
        &mut out,
    );
    let ext = |ip: &str| Endpoint::new(ip.parse().unwrap(), 443);
    d.observe(
        &flow(T0 + SEC, FlowEvent::Start, web(), ext("192.0.2.1"), true, 0),
        "n",
        &mut out,
    );
    // Still learning at 599 s: a new port is silent.
    let mut db_6379 = db();
    db_6379.port = 6379;
    d.observe(
        &flow(
            T0 + 599 * SEC,
            FlowEvent::Start,
            web(),
            db_6379.clone(),
            true,
            0,
        ),
        "n",
        &mut out,
    );
    assert!(out.is_empty(), "{out:#?}");

    let t = T0 + 601 * SEC;
    d.observe(
        &flow(t, FlowEvent::Start, web(), db(), true, 0),
        "n",
        &mut out,
    );
    d.observe(
        &flow(t, FlowEvent::Start, web(), ext("192.0.2.1"), true, 0),
        "n",
        &mut out,
    );
    assert!(out.is_empty(), "known destinations: {out:#?}");

    d.observe(
        &flow(t + 1, FlowEvent::Start, web(), ext("198.51.100.9"), true, 0),
        "n",
        &mut out,
    );
    let cache = pod("10.0.0.3", 11211, "shop", "cache");
    d.observe(
        &flow(t + 2, FlowEvent::Start, web(), cache.clone(), true, 0),
        "n",
        &mut out,
    );
    let mut db_9000 = db();
    db_9000.port = 9000;
    d.observe(
        &flow(t + 3, FlowEvent::Start, web(), db_9000.clone(), false, 0),
        "n",
        &mut out,
    );
    d.observe(
        &flow(t + 4, FlowEvent::Start, web(), db_9000.clone(), true, 0),
        "n",
        &mut out,
    );
    // (shop/cache is itself new: its ports are learnt during its own learning period.)
    // Repeats are quiet.
    d.observe(
        &flow(t + 5, FlowEvent::Start, web(), ext("198.51.100.9"), true, 0),
        "n",
        &mut out,
    );
    d.observe(
        &flow(t + 6, FlowEvent::Start, web(), db_9000, true, 0),
        "n",
        &mut out,
    );

    let got: Vec<(String, String)> = out
        .iter()
        .map(|a| (a.details["anomaly"].clone(), a.summary.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "new_external_destination".to_string(),
                "shop/web talks to external:198.51.100.9 for the first time".to_string()
            ),
            (
                "new_destination".to_string(),
                "shop/web talks to shop/cache for the first time".to_string()
            ),
            (
                "new_listening_port".to_string(),
                "shop/db answers on 9000/tcp for the first time".to_string()
            ),
        ]
    );
}

#[test]
fn config_validation() {
    assert!(AnomalyConfig::default().validate().is_ok());
    let bad = AnomalyConfig {
        alpha: 0.0,
        ..Default::default()
    };
    assert!(bad.validate().unwrap_err().contains("alpha"));
}
