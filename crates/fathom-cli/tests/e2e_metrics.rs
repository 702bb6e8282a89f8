//! Prometheus metrics end to end: a real `prometheus` (Debian's) scrapes the agent while lab
//! pods talk, and the values are read back through Prometheus's own HTTP API.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

fn prom_query(port: u16, q: &str) -> Vec<Value> {
    let out = Command::new("curl")
        .args([
            "-s",
            "--get",
            &format!("http://127.0.0.1:{port}/api/v1/query"),
            "--data-urlencode",
            &format!("query={q}"),
        ])
        .output()
        .expect("curl");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn prometheus_scrapes_flow_drop_and_health_metrics() {
    let _s = serial();
    let lab = lab("e2eprom");
    let metrics_port = free_port();
    let agent = Agent::start_with(
        &lab,
        &[
            "--web-address",
            &format!("127.0.0.1:{metrics_port}"),
            "--metrics-context",
            "pod",
        ],
    );
    let a = lab.pod("x/a").unwrap().clone();
    let b = lab.pod("y/b").unwrap().clone();

    // Our own exposition first: it must be valid text with the families we promise.
    let text = Command::new("curl")
        .args(["-s", &format!("http://127.0.0.1:{metrics_port}/metrics")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for family in [
        "fathom_lost_events_total",
        "fathom_map_capacity",
        "fathom_process_resident_memory_bytes",
        "fathom_store_lag_seconds",
        "fathom_store_rows",
        "# EOF",
    ] {
        assert!(
            text.contains(family),
            "{family} missing from /metrics:\n{text}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let prom_port = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!("global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: fathom\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"),
    )
    .unwrap();
    let prom = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (apt-get install prometheus)");
    let _prom = Bg(prom);

    // Traffic: an HTTP exchange (a flow) and a datagram to a closed port (a drop).
    let _srv = http_server(&b, dir.path(), 8080);
    let st = a
        .command("curl")
        .args(["-s", "-o", "/dev/null", &format!("http://{}:8080/", b.ipv4)])
        .status()
        .unwrap();
    assert!(st.success());
    let st = a
        .command("python3")
        .args(["-c", &format!("import socket\nsocket.socket(socket.AF_INET,socket.SOCK_DGRAM).sendto(b'x',('{}',7777))", b.ipv4)])
        .status()
        .unwrap();
    assert!(st.success());

    let want = [
        (
            r#"fathom_flows_processed_total{type="flow",source="x/a",destination="y/b"}"#,
            1.0,
        ),
        (
            r#"fathom_drop_total{reason="NO_SOCKET",protocol="udp",destination="y/b"}"#,
            1.0,
        ),
        (r#"fathom_kernel_drops_total{reason="NO_SOCKET"}"#, 1.0),
        (
            r#"fathom_port_distribution_total{protocol="tcp",port="8080"}"#,
            1.0,
        ),
        (r#"fathom_tcp_flags_total{flag="SYN",family="ipv4"}"#, 1.0),
        (r#"fathom_events_received_total"#, 1.0),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    for (q, min) in want {
        loop {
            let res = prom_query(prom_port, q);
            if res.first().map(value).is_some_and(|v| v >= min) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus never saw {q} >= {min}: {res:?}\nagent log:\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    // Nothing was lost on the way.
    let lost = prom_query(prom_port, "sum(fathom_lost_events_total)");
    assert_eq!(lost.first().map(value), Some(0.0), "{lost:?}");
    // Scrapes succeeded throughout.
    let up = prom_query(prom_port, r#"up{job="fathom"}"#);
    assert_eq!(up.first().map(value), Some(1.0));
}
