//! Detectors driven by synthetic flow records and their own clock (record times).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fathom_model::{
    Endpoint, Flow, FlowEvent, L4Info, L4Protocol, Record, TcpFlags, TcpInfo, Timestamp, Traffic,
};

use super::*;

const SEC: u64 = 1_000_000_000;

fn ep(ip: &str, port: u16, pod: Option<&str>) -> Endpoint {
    let mut e = Endpoint::new(ip.parse().unwrap(), port);
    if let Some(p) = pod {
        let (ns, name) = p.split_once('/').unwrap();
        e.namespace = Some(ns.into());
        e.pod = Some(name.into());
    }
    e
}

#[allow(clippy::too_many_arguments)]
fn flow(
    t: u64,
    id: &str,
    ev: FlowEvent,
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    proto: L4Protocol,
    out_flags: u8,
) -> Record {
    Record::from(Flow {
        time: Timestamp::from_nanos(t),
        flow_id: id.into(),
        event: ev,
        source: ep(src, sport, Some("x/a")),
        destination: ep(dst, dport, Some("y/b")),
        process: None,
        destination_process: None,
        l4: L4Info {
            protocol: proto,
            tcp_flags: (proto == L4Protocol::Tcp).then_some(TcpFlags(out_flags)),
            tcp_flags_out: (proto == L4Protocol::Tcp).then_some(TcpFlags(out_flags)),
            tcp_flags_in: None,
            icmp_type: None,
            icmp_code: None,
        },
        traffic: Traffic::default(),
        tcp: TcpInfo::default(),
        first_seen: Timestamp::from_nanos(t),
        last_seen: Timestamp::from_nanos(t),
        end_reason: None,
        interface: None,
        node: "n".into(),
    })
}

fn syn_probe(t: u64, src: &str, dst: &str, dport: u16) -> Record {
    flow(
        t,
        &format!("{src}-{dst}-{dport}-{t}"),
        FlowEvent::Start,
        src,
        40000,
        dst,
        dport,
        L4Protocol::Tcp,
        TcpFlags::SYN,
    )
}

fn cfg() -> DetectConfig {
    DetectConfig {
        scan_ports: 10,
        scan_hosts: 5,
        syn_flood_rate: 50.0,
        syn_flood_half_open: 100,
        window: Duration::from_secs(10),
        cooldown: Duration::from_secs(60),
        ..Default::default()
    }
}

fn run(d: &mut Detectors, recs: &[Record]) -> Vec<Alert> {
    recs.iter().flat_map(|r| d.observe(r)).collect()
}

#[test]
fn vertical_syn_scan_alerts_once_at_the_threshold_naming_pods() {
    let mut d = Detectors::new(cfg(), "n".into(), None);
    let probes: Vec<Record> = (0..9)
        .map(|i| syn_probe(SEC + i, "10.0.0.1", "10.0.0.2", 1000 + i as u16))
        .collect();
    assert!(run(&mut d, &probes).is_empty(), "9 ports < 10");
    // The same port again is not a new port.
    assert!(run(&mut d, &[syn_probe(SEC + 20, "10.0.0.1", "10.0.0.2", 1000)]).is_empty());
    let a = run(&mut d, &[syn_probe(SEC + 30, "10.0.0.1", "10.0.0.2", 2000)]);
    assert_eq!(a.len(), 1);
    let a = &a[0];
    assert_eq!(a.kind, "port_scan");
    assert_eq!(a.details["direction"], "vertical");
    assert_eq!(a.details["scan_type"], "syn");
    assert_eq!(a.evidence["distinct_ports"], 10.0);
    assert_eq!(a.evidence["probes"], 11.0);
    assert_eq!(
        a.source.as_ref().unwrap().pod_name().as_deref(),
        Some("x/a")
    );
    assert_eq!(
        a.destination.as_ref().unwrap().pod_name().as_deref(),
        Some("y/b")
    );
    assert!(
        a.summary.contains("x/a") && a.summary.contains("SYN"),
        "{}",
        a.summary
    );
    assert_eq!(a.window_secs, Some(10.0));
    // More ports within the cooldown: quiet.
    assert!(run(&mut d, &[syn_probe(SEC + 40, "10.0.0.1", "10.0.0.2", 2001)]).is_empty());
}

#[test]
fn ports_outside_the_window_do_not_count() {
    let mut d = Detectors::new(cfg(), "n".into(), None);
    // 9 ports at t=1s, 9 more at t=12s: never 10 within 10 s.
    let mut recs: Vec<Record> = (0..9)
        .map(|i| syn_probe(SEC, "10.0.0.1", "10.0.0.2", 1000 + i))
        .collect();
    recs.extend((0..9).map(|i| syn_probe(12 * SEC, "10.0.0.1", "10.0.0.2", 3000 + i)));
    assert!(run(&mut d, &recs).is_empty());
    // One more inside the second window: 10.
    assert_eq!(
        run(
            &mut d,
            &[syn_probe(12 * SEC + 1, "10.0.0.1", "10.0.0.2", 4000)]
        )
        .len(),
        1
    );
}

#[test]
fn scan_types_come_from_first_packet_flags_and_udp() {
    for (flags, proto, want) in [
        (TcpFlags::FIN, L4Protocol::Tcp, "fin"),
        (0, L4Protocol::Tcp, "null"),
        (
            TcpFlags::FIN | TcpFlags::PSH | TcpFlags::URG,
            L4Protocol::Tcp,
            "xmas",
        ),
        (0, L4Protocol::Udp, "udp"),
    ] {
        let mut d = Detectors::new(cfg(), "n".into(), None);
        let recs: Vec<Record> = (0..10)
            .map(|i| {
                flow(
                    SEC + i,
                    &format!("f{i}"),
                    FlowEvent::Start,
                    "10.0.0.1",
                    40000,
                    "10.0.0.2",
                    100 + i as u16,
                    proto,
                    flags,
                )
            })
            .collect();
        let a = run(&mut d, &recs);
        assert_eq!(a.len(), 1, "{want}");
        assert_eq!(a[0].details["scan_type"], want);
    }
    // Mid-stream pickups (ACK first) and ICMP are not probes.
    let mut d = Detectors::new(cfg(), "n".into(), None);
    let recs: Vec<Record> = (0..20)
        .map(|i| {
            flow(
                SEC,
                &format!("f{i}"),
                FlowEvent::Start,
                "10.0.0.1",
                40000,
                "10.0.0.2",
                100 + i as u16,
                L4Protocol::Tcp,
                TcpFlags::ACK,
            )
        })
        .collect();
    assert!(run(&mut d, &recs).is_empty());
}

#[test]
fn horizontal_sweep_and_single_port_clients_are_told_apart() {
    let mut d = Detectors::new(cfg(), "n".into(), None);
    // Many clients to one port of one server: nothing.
    let recs: Vec<Record> = (0..50)
        .map(|i| syn_probe(SEC + i, &format!("10.1.0.{i}"), "10.0.0.2", 80))
        .collect();
    assert!(run(&mut d, &recs).is_empty());
    // One client sweeping port 22 over 5 hosts: horizontal.
    let recs: Vec<Record> = (0..5)
        .map(|i| syn_probe(SEC + i, "10.0.0.9", &format!("10.2.0.{i}"), 22))
        .collect();
    let a = run(&mut d, &recs);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].details["direction"], "horizontal");
    assert_eq!(a[0].evidence["distinct_hosts"], 5.0);
    assert_eq!(a[0].evidence["port"], 22.0);
}

fn flood(d: &mut Detectors, n: u64, start: u64, complete: bool) -> Vec<Alert> {
    let mut out = Vec::new();
    for i in 0..n {
        let t = start + i * (SEC / 100); // 100 SYN/s
        let id = format!("c{start}-{i}");
        out.extend(d.observe(&flow(
            t,
            &id,
            FlowEvent::Start,
            "10.0.0.66",
            10000 + (i % 50000) as u16,
            "10.0.0.2",
            80,
            L4Protocol::Tcp,
            TcpFlags::SYN,
        )));
        if complete {
            out.extend(d.observe(&flow(
                t + 1000,
                &id,
                FlowEvent::End,
                "10.0.0.66",
                10000 + (i % 50000) as u16,
                "10.0.0.2",
                80,
                L4Protocol::Tcp,
                TcpFlags::SYN | TcpFlags::ACK | TcpFlags::FIN,
            )));
        }
    }
    out
}

#[test]
fn syn_flood_needs_rate_and_half_open_and_names_the_top_source() {
    let c = DetectConfig {
        scan_ports: 1000,
        ..cfg()
    };
    // 100 SYN/s for 10 s to one service, every handshake completed: a busy service, no alert.
    let mut d = Detectors::new(c.clone(), "n".into(), None);
    assert!(flood(&mut d, 1000, SEC, true).is_empty());
    // Same rate, none completed: the 500th SYN makes 50/s over 10 s; half-open reaches 100 first.
    let mut d = Detectors::new(c, "n".into(), None);
    let a = flood(&mut d, 1000, SEC, false);
    assert_eq!(a.len(), 1, "one alert, then cooldown");
    let a = &a[0];
    assert_eq!(a.kind, "syn_flood");
    assert_eq!(a.evidence["syns"], 500.0);
    assert_eq!(a.evidence["syn_per_sec"], 50.0);
    assert_eq!(a.evidence["half_open"], 500.0);
    assert_eq!(a.details["block"], "10.0.0.66");
    assert_eq!(
        a.source.as_ref().unwrap().ip,
        "10.0.0.66".parse::<IpAddr>().unwrap()
    );
    assert_eq!(a.destination.as_ref().unwrap().port, 80);
}

#[test]
fn automatic_response_blocks_the_source_and_says_so() {
    let blocked = Arc::new(Mutex::new(Vec::new()));
    let b2 = Arc::clone(&blocked);
    let responder: Responder = Box::new(move |ip, secs, _why| {
        b2.lock().unwrap().push((ip, secs));
        Ok(format!("blocked {ip}/32 for {secs}s at the shield"))
    });
    let c = DetectConfig {
        auto_block: Some(Duration::from_secs(600)),
        ..cfg()
    };
    let mut d = Detectors::new(c, "n".into(), Some(responder));
    let recs: Vec<Record> = (0..10)
        .map(|i| syn_probe(SEC + i, "10.0.0.1", "10.0.0.2", 1000 + i as u16))
        .collect();
    let a = run(&mut d, &recs);
    assert_eq!(a.len(), 1);
    assert_eq!(
        a[0].action.as_deref(),
        Some("blocked 10.0.0.1/32 for 600s at the shield")
    );
    assert_eq!(
        *blocked.lock().unwrap(),
        vec![("10.0.0.1".parse::<IpAddr>().unwrap(), 600)]
    );
}

#[test]
fn memory_stays_bounded_under_many_sources() {
    let c = DetectConfig {
        max_tracked: 100,
        ..cfg()
    };
    let mut d = Detectors::new(c, "n".into(), None);
    for i in 0..10_000u32 {
        let src = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        d.observe(&syn_probe(SEC, &src, "10.0.0.2", 80));
    }
    assert!(d.scans.tracked_sources() <= 100);
    assert!(d.floods.tracked_flows() <= 100);
}

#[test]
fn config_validation() {
    assert!(DetectConfig::default().validate().is_ok());
    let bad = DetectConfig {
        window: Duration::ZERO,
        ..Default::default()
    };
    assert!(bad.validate().unwrap_err().contains("window"));
    let bad = DetectConfig {
        scan_ports: 1,
        ..Default::default()
    };
    assert!(bad.validate().is_err());
}
