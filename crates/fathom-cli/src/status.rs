//! `fathom status`: what the agent loaded and attached, how full its maps are, what it lost,
//! and what this kernel can do.

use std::path::PathBuf;

use fathom_agent::client::{AgentClient, DEFAULT_SOCKET};
use serde_json::Value;

#[derive(clap::Args)]
pub struct StatusArgs {
    #[arg(long, env = "FATHOM_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: StatusFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub async fn run(args: StatusArgs) -> anyhow::Result<i32> {
    let st = AgentClient::new(&args.socket).status().await?;
    if args.output == StatusFormat::Json {
        println!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(0);
    }
    println!(
        "agent {} on {} (pid {}), up {}s, API {}",
        st.version, st.node, st.pid, st.uptime_seconds, st.socket
    );
    println!(
        "events: {} received, {} dropped (pipeline queue full); records published: {}, in memory: {}",
        st.events_received, st.events_dropped, st.records_published, st.hub_records
    );

    println!("\nPROGRAMS");
    println!(
        "{:<20} {:<8} {:<16} {:>6} {:>12} {:>14}  ATTACHED TO",
        "NAME", "OBJECT", "TYPE", "ID", "RUNS", "RUN TIME (ns)"
    );
    let empty = Vec::new();
    for p in st.kernel["programs"].as_array().unwrap_or(&empty) {
        let attach: Vec<String> = p["attach"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|a| format!("{} {}", s(&a["kind"]), s(&a["target"])))
            .collect();
        println!(
            "{:<20} {:<8} {:<16} {:>6} {:>12} {:>14}  {}",
            s(&p["name"]),
            s(&p["object"]),
            s(&p["prog_type"]),
            s(&p["id"]),
            s(&p["run_count"]),
            s(&p["run_time_ns"]),
            if attach.is_empty() {
                "-".to_string()
            } else {
                attach.join(", ")
            }
        );
    }
    if st.kernel["bpf_stats_enabled"] != Value::Bool(true) {
        println!("(run counts need `sysctl kernel.bpf_stats_enabled=1`)");
    }

    println!("\nMAPS");
    println!(
        "{:<16} {:<8} {:<14} {:>10} {:>10} {:>6}",
        "NAME", "OBJECT", "TYPE", "ENTRIES", "MAX", "FILL"
    );
    for m in st.kernel["maps"].as_array().unwrap_or(&empty) {
        let max = m["max_entries"].as_u64().unwrap_or(0);
        let (entries, fill) = match m["entries"].as_u64() {
            Some(e) if max > 0 => (
                e.to_string(),
                format!("{:.1}%", e as f64 * 100.0 / max as f64),
            ),
            _ => ("-".into(), "-".into()),
        };
        println!(
            "{:<16} {:<8} {:<14} {:>10} {:>10} {:>6}",
            s(&m["name"]),
            s(&m["object"]),
            s(&m["map_type"]),
            entries,
            max,
            fill
        );
    }

    println!("\nINTERFACES");
    for i in st.kernel["interfaces"].as_array().unwrap_or(&empty) {
        println!(
            "  {:<16} ifindex {:<6} {}",
            s(&i["name"]),
            s(&i["ifindex"]),
            s(&i["mode"])
        );
    }
    for e in &st.attach_errors {
        println!("  attach error: {e}");
    }

    println!("\nLOST EVENTS (ringbuf full)");
    if let Some(l) = st.kernel["lost_events"].as_object() {
        for (k, v) in l {
            println!("  {k:<8} {}", s(v));
        }
    }
    println!("\nKERNEL COUNTERS");
    if let Some(c) = st.kernel["counters"].as_object() {
        for (k, v) in c {
            println!("  {k:<22} {}", s(v));
        }
    }

    print_shield(&st.shield);
    print_l7(&st.l7);

    println!("\nFEATURES (kernel {})", s(&st.features["kernel"]));
    for f in st.features["features"].as_array().unwrap_or(&empty) {
        let ok = f["available"].as_bool().unwrap_or(false);
        println!(
            "  {:<3} {:<14} {}",
            if ok { "yes" } else { "NO" },
            s(&f["name"]),
            if ok {
                s(&f["impact"])
            } else {
                format!("{} — {}", s(&f["detail"]), s(&f["impact"]))
            }
        );
    }
    for w in st.kernel["warnings"].as_array().unwrap_or(&empty) {
        println!("  warning: {}", s(w));
    }
    Ok(0)
}

/// The XDP shield: mode, where it is attached and how (native/generic), counters.
fn print_shield(sh: &Value) {
    println!("\nSHIELD");
    if sh.is_null() {
        println!("  disabled (shield.enabled: false)");
        return;
    }
    let empty = Vec::new();
    println!(
        "  mode {}, {} blocked CIDRs, allowlist [{}], pins {}",
        s(&sh["mode"]),
        s(&sh["blocks"]),
        sh["allowlist"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(s)
            .collect::<Vec<_>>()
            .join(", "),
        s(&sh["pin_root"])
    );
    for i in sh["interfaces"].as_array().unwrap_or(&empty) {
        println!(
            "  {:<16} ifindex {:<6} xdp {}",
            s(&i["name"]),
            s(&i["ifindex"]),
            s(&i["mode"])
        );
    }
    for (title, key) in [("verdicts", "stats"), ("drops by reason", "drops")] {
        if let Some(m) = sh["counters"][key].as_object() {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={}", s(v))).collect();
            println!("  {title}: {}", parts.join(" "));
        }
    }
    if let Some(m) = sh["counters"]["protocols"].as_object() {
        let parts: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{k}={}pkts/{}B", s(&v[0]), s(&v[1])))
            .collect();
        println!("  protocols: {}", parts.join(" "));
    }
    for e in sh["errors"].as_array().unwrap_or(&empty) {
        println!("  error: {}", s(e));
    }
}

/// Live L7 capture: the kernel counters and the libssl files carrying the TLS uprobes.
fn print_l7(l7: &Value) {
    if !l7["enabled"].as_bool().unwrap_or(false) {
        return;
    }
    println!("\nL7 CAPTURE");
    for k in ["events", "records", "streams", "decode_errors"] {
        println!("  {k:<22} {}", s(&l7[k]));
    }
    if let Some(c) = l7["kernel"].as_object() {
        for (k, v) in c {
            println!("  kernel_{k:<15} {}", s(v));
        }
    }
    match l7["tls_libraries"].as_object() {
        Some(libs) if !libs.is_empty() => {
            for (path, users) in libs {
                println!("  tls uprobes on {path} ({} processes)", s(users));
            }
        }
        _ => println!("  tls uprobes: none attached (no OpenSSL libssl found)"),
    }
    for w in l7["warnings"].as_array().into_iter().flatten() {
        println!("  warning: {}", s(w));
    }
}
