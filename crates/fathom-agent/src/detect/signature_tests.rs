//! Signature rules: format errors with lines, matching over synthetic L7 and flow records,
//! per-source thresholds over a sliding window.

use fathom_model::l7::{
    dns::DnsExchange, http::HttpExchange, tls::TlsHandshake, ExchangeKind, L7Detail, L7Exchange,
    L7Record,
};
use fathom_model::{
    Endpoint, Flow, FlowEvent, L4Info, L4Protocol, Record, TcpFlags, TcpInfo, Timestamp, Traffic,
};

use super::signatures::{parse_rules, SignatureEngine};

const MS: u64 = 1_000_000;

fn ep(ip: &str, port: u16) -> Endpoint {
    let mut e = Endpoint::new(ip.parse().unwrap(), port);
    e.namespace = Some("x".into());
    e.pod = Some("a".into());
    e
}

fn l7(t: u64, src: &str, detail: L7Detail) -> Record {
    Record::from(L7Record {
        time: Timestamp::from_nanos(t),
        source: ep(src, 40000),
        destination: Endpoint::new("10.0.0.2".parse().unwrap(), 80),
        process: None,
        flow_id: None,
        tls_plaintext: false,
        exchange: L7Exchange {
            kind: ExchangeKind::RequestResponse,
            request_time: None,
            response_time: None,
            latency_ns: None,
            request_bytes: 0,
            response_bytes: 0,
            status: None,
            error: false,
            detail,
        },
    })
}

fn http(path: &str, ua: &str) -> L7Detail {
    L7Detail::Http(HttpExchange {
        method: Some("GET".into()),
        path: Some(path.into()),
        host: Some("shop.example".into()),
        user_agent: Some(ua.into()),
        ..Default::default()
    })
}

fn syn(t: u64, src: &str) -> Record {
    Record::from(Flow {
        time: Timestamp::from_nanos(t),
        flow_id: format!("{src}-{t}"),
        event: FlowEvent::Start,
        source: ep(src, 40000),
        destination: Endpoint::new("10.0.0.2".parse().unwrap(), 80),
        process: None,
        destination_process: None,
        l4: L4Info {
            protocol: L4Protocol::Tcp,
            tcp_flags: Some(TcpFlags(TcpFlags::SYN)),
            tcp_flags_out: Some(TcpFlags(TcpFlags::SYN)),
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

const RULES: &str = r#"
rules:
  - id: etc-passwd
    description: path traversal to /etc/passwd
    severity: high
    match:
      http_path: "/etc/passwd"
  - id: evil-dns
    match:
      dns_suffix: evil.example
  - id: bad-sni
    match:
      tls_sni: "^mining\\."
  - id: scanner-ua
    severity: low
    match:
      user_agent: "(?i)sqlmap|nikto"
  - id: shellshock
    match:
      contains: "hex:28 29 20 7b"
  - id: syn-burst
    description: more than 100 SYNs per second from one source
    match:
      tcp_flags: [SYN]
    threshold: {count: 101, window: 1s}
"#;

fn engine() -> SignatureEngine {
    SignatureEngine::new(parse_rules("rules.yaml", RULES).expect("rules"), 1000)
}

fn fire(e: &mut SignatureEngine, r: &Record) -> Vec<String> {
    let mut out = Vec::new();
    e.observe(r, "n", &mut out);
    out.iter().map(|a| a.details["rule"].clone()).collect()
}

#[test]
fn l7_fields_match_their_rules_only() {
    let mut e = engine();
    assert_eq!(e.rules().len(), 6);
    let a = {
        let mut out = Vec::new();
        e.observe(
            &l7(MS, "10.0.0.1", http("/../../etc/passwd", "curl/8")),
            "n",
            &mut out,
        );
        out
    };
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].kind, "signature");
    assert_eq!(a[0].details["rule"], "etc-passwd");
    assert_eq!(a[0].severity, fathom_model::Severity::High);
    assert_eq!(
        a[0].source.as_ref().unwrap().pod_name().as_deref(),
        Some("x/a")
    );
    assert!(a[0].summary.contains("path traversal"), "{}", a[0].summary);

    assert!(fire(
        &mut e,
        &l7(2 * MS, "10.0.0.1", http("/index.html", "curl/8"))
    )
    .is_empty());
    assert_eq!(
        fire(&mut e, &l7(3 * MS, "10.0.0.3", http("/", "sqlmap/1.7"))),
        ["scanner-ua"]
    );
    assert_eq!(
        fire(
            &mut e,
            &l7(4 * MS, "10.0.0.4", http("/cgi-bin/x?() { :;}; echo", "x"))
        ),
        ["shellshock"]
    );
    let dns = |q: &str| {
        L7Detail::Dns(DnsExchange {
            qname: Some(q.into()),
            ..Default::default()
        })
    };
    assert_eq!(
        fire(&mut e, &l7(5 * MS, "10.0.0.5", dns("c2.EVIL.example."))),
        ["evil-dns"]
    );
    assert_eq!(
        fire(&mut e, &l7(6 * MS, "10.0.0.6", dns("evil.example"))),
        ["evil-dns"]
    );
    assert!(fire(&mut e, &l7(7 * MS, "10.0.0.7", dns("notevil.example"))).is_empty());
    let tls = |s: &str| {
        L7Detail::Tls(TlsHandshake {
            sni: Some(s.into()),
            ..Default::default()
        })
    };
    assert_eq!(
        fire(&mut e, &l7(8 * MS, "10.0.0.8", tls("mining.pool.example"))),
        ["bad-sni"]
    );
    assert!(fire(&mut e, &l7(9 * MS, "10.0.0.8", tls("www.example"))).is_empty());
}

#[test]
fn syn_threshold_is_more_than_100_per_second_per_source() {
    let mut e = engine();
    // 100 SYNs within 1 s from one source: nothing.
    for i in 0..100 {
        assert!(
            fire(&mut e, &syn(i * 9 * MS, "10.0.0.1")).is_empty(),
            "SYN {i}"
        );
    }
    // Another source's SYNs do not add up with the first one's.
    assert!(fire(&mut e, &syn(900 * MS, "10.0.0.2")).is_empty());
    // The 101st within the window: alert.
    assert_eq!(fire(&mut e, &syn(950 * MS, "10.0.0.1")), ["syn-burst"]);

    // Spread over time: 101 SYNs at 100/s never reach 101 within 1 s.
    let mut e = engine();
    for i in 0..300 {
        assert!(
            fire(&mut e, &syn(i * 10 * MS + 1, "10.0.0.9")).is_empty(),
            "SYN {i}"
        );
    }
}

fn err_of(text: &str) -> (usize, String) {
    let e = parse_rules("r.yaml", text).expect_err("must be rejected");
    assert!(e.to_string().starts_with("r.yaml: line "), "{e}");
    (e.line, e.reason)
}

#[test]
fn invalid_rules_are_rejected_with_line_and_reason() {
    let (line, why) = err_of("rules:\n  - id: a\n    match:\n      http_path: \"(unclosed\"\n");
    assert_eq!(line, 4);
    assert!(why.contains("invalid regex"), "{why}");

    let (line, why) = err_of("rules:\n  - id: a\n    match:\n      http_paht: x\n");
    assert_eq!(line, 4);
    assert!(why.contains("unknown field"), "{why}");

    let (line, why) = err_of("rules:\n  - id: ok\n    match: {dns_suffix: x.example}\n  - id: b\n    match:\n      dst_port: 80\n");
    assert_eq!(line, 5);
    assert!(why.contains("at least one matcher"), "{why}");

    let (line, why) = err_of("rules:\n  - id: a\n    match:\n      contains: \"hex:4g\"\n");
    assert_eq!(line, 4);
    assert!(why.contains("not hex"), "{why}");

    let (line, why) = err_of("rules:\n  - id: a\n    match: {tcp_flags: [SYN, BOGUS]}\n");
    assert_eq!(line, 3);
    assert!(why.contains("unknown TCP flag"), "{why}");

    let (line, why) = err_of(
        "rules:\n  - id: a\n    match: {tcp_flags: [SYN]}\n    threshold:\n      count: 0\n      window: 1s\n",
    );
    assert_eq!(line, 5);
    assert!(why.contains("at least 1"), "{why}");

    let (line, why) =
        err_of("rules:\n  - id: a\n    match: {tcp_flags: [SYN]}\n  - id: a\n    match: {tcp_flags: [FIN]}\n");
    assert_eq!(line, 4);
    assert!(why.contains("duplicate"), "{why}");

    let (_, why) = err_of("rules:\n  - id: a\n    match: {tcp_flags: [SYN]}\n    threshold: {count: 5, window: banana}\n");
    assert!(why.contains("window"), "{why}");

    let (line, why) = err_of("rules: [\n");
    assert!(line >= 1 && !why.is_empty());
}
