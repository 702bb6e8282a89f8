//! How records are printed: `table` for people, `json` (an array, or pretty objects when
//! following) and `jsonl` (one compact object per line) for programs. One place for every
//! verb that prints records (observe, replay), so they read the same.

use std::io::Write;

use fathom_model::l7::L7Detail;
use fathom_model::{Endpoint, Flow, Record};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Jsonl,
}

pub struct Printer<W: Write> {
    out: W,
    format: Format,
    /// A stream cannot be a JSON array: print objects one after another instead.
    streaming: bool,
    header_done: bool,
    first: bool,
    /// Table rows of policy verdicts name the deciding policies and rules.
    policy_names: bool,
}

fn endpoint(e: &Endpoint) -> String {
    let addr = if e.ip.is_ipv6() {
        format!("[{}]:{}", e.ip, e.port)
    } else {
        format!("{}:{}", e.ip, e.port)
    };
    match e.pod_name() {
        Some(p) => format!("{p} ({addr})"),
        None => addr,
    }
}

fn time_of_day(r: &Record) -> String {
    let s = r.time().to_rfc3339();
    // 2026-11-26T15:04:05.123456789Z → 15:04:05.123
    s.get(11..23).unwrap_or(&s).to_string()
}

fn flow_row(f: &Flow) -> [String; 8] {
    let flags =
        f.l4.tcp_flags
            .map(|t| t.names().join(","))
            .unwrap_or_default();
    let proc_ = f
        .process
        .as_ref()
        .map(|p| format!("{}[{}]", p.comm, p.pid))
        .or_else(|| {
            f.destination_process
                .as_ref()
                .map(|p| format!("→{}[{}]", p.comm, p.pid))
        })
        .unwrap_or_default();
    let event = match (f.event, f.end_reason) {
        (fathom_model::FlowEvent::End, Some(r)) => format!(
            "end:{}",
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        ),
        (e, _) => serde_json::to_value(e)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
    };
    [
        event,
        endpoint(&f.source),
        endpoint(&f.destination),
        f.l4.protocol.to_string(),
        flags,
        format!("{}/{}", f.traffic.packets_out, f.traffic.packets_in),
        format!("{}/{}", f.traffic.bytes_out, f.traffic.bytes_in),
        proc_,
    ]
}

/// One line saying what the exchange was, per protocol.
fn l7_summary(d: &L7Detail) -> String {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut s = match d {
        L7Detail::Http(h) | L7Detail::Http2(h) => {
            format!("{} {}{}", o(&h.method), o(&h.host), o(&h.path))
        }
        L7Detail::Grpc(g) => format!(
            "{}/{} grpc-status {}",
            o(&g.service),
            o(&g.method),
            g.grpc_status.map(|s| s.to_string()).unwrap_or_default()
        ),
        L7Detail::Dns(q) => format!(
            "{} {} → {} answers",
            o(&q.qtype),
            o(&q.qname),
            q.answers.len()
        ),
        L7Detail::Redis(r) => format!("{} {}", o(&r.command), o(&r.key)),
        L7Detail::Kafka(k) => format!(
            "{} v{} {}",
            o(&k.api_name),
            k.api_version,
            k.topics.join(",")
        ),
        L7Detail::Postgres(p) => p.statement.clone().unwrap_or_else(|| p.kind.clone()),
        L7Detail::Mysql(m) => m.statement.clone().unwrap_or_else(|| m.command.clone()),
        L7Detail::Tls(t) => format!("sni {} {}", o(&t.sni), o(&t.version)),
    };
    s = s.replace(['\n', '\r', '\t'], " ");
    if s.chars().count() > 80 {
        s = s.chars().take(79).collect::<String>() + "…";
    }
    s
}

fn table_row(c: &[String; 9]) -> String {
    format!(
        "{:<12} {:<9} {:<36} {:<36} {:<6} {:<16} {:>11} {:>15} {}",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]
    )
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, format: Format, streaming: bool) -> Self {
        Printer {
            out,
            format,
            streaming,
            header_done: false,
            first: true,
            policy_names: false,
        }
    }

    /// `--print-policy-names`.
    pub fn with_policy_names(mut self, on: bool) -> Self {
        self.policy_names = on;
        self
    }

    pub fn record(&mut self, r: &Record) -> std::io::Result<()> {
        match self.format {
            Format::Jsonl => {
                serde_json::to_writer(&mut self.out, r)?;
                writeln!(self.out)?;
            }
            Format::Json if self.streaming => {
                serde_json::to_writer_pretty(&mut self.out, r)?;
                writeln!(self.out)?;
            }
            Format::Json => {
                write!(self.out, "{}", if self.first { "[\n" } else { ",\n" })?;
                serde_json::to_writer_pretty(&mut self.out, r)?;
            }
            Format::Table => {
                if !self.header_done {
                    let h = [
                        "TIME",
                        "EVENT",
                        "SOURCE",
                        "DESTINATION",
                        "PROTO",
                        "FLAGS",
                        "PKTS OUT/IN",
                        "BYTES OUT/IN",
                        "PROCESS",
                    ];
                    writeln!(self.out, "{}", table_row(&h.map(String::from)))?;
                    self.header_done = true;
                }
                match r {
                    Record::Flow(f) => {
                        let c = flow_row(f);
                        writeln!(
                            self.out,
                            "{:<12} {:<9} {:<36} {:<36} {:<6} {:<16} {:>11} {:>15} {}",
                            time_of_day(r),
                            c[0],
                            c[1],
                            c[2],
                            c[3],
                            c[4],
                            c[5],
                            c[6],
                            c[7]
                        )?;
                    }
                    Record::Drop(d) => {
                        let ep = |e: &Option<Endpoint>| {
                            e.as_ref().map(endpoint).unwrap_or_else(|| "-".into())
                        };
                        let mut reason = d.reason.clone();
                        if d.suppressed > 0 {
                            reason.push_str(&format!(" (+{})", d.suppressed));
                        }
                        let row = [
                            time_of_day(r),
                            "drop".to_string(),
                            ep(&d.source),
                            ep(&d.destination),
                            d.protocol.map(|p| p.to_string()).unwrap_or_default(),
                            reason,
                            String::new(),
                            d.length.to_string(),
                            d.location.clone(),
                        ];
                        writeln!(self.out, "{}", table_row(&row))?;
                    }
                    Record::PolicyVerdict(v) => {
                        let mut why = v.reason.clone();
                        if self.policy_names && !v.policies.is_empty() {
                            let names: Vec<String> =
                                v.policies.iter().map(|p| p.display_name()).collect();
                            why = format!("{why}: {}", names.join(", "));
                        }
                        let row = [
                            time_of_day(r),
                            "policy".to_string(),
                            endpoint(&v.source),
                            endpoint(&v.destination),
                            v.protocol.to_string(),
                            v.verdict.as_str().to_string(),
                            v.direction.clone(),
                            v.length.to_string(),
                            why,
                        ];
                        writeln!(self.out, "{}", table_row(&row))?;
                    }
                    Record::L7(l) => {
                        let x = &l.exchange;
                        let lat = x
                            .latency_ns
                            .map(|n| format!("{:.3}ms", n as f64 / 1e6))
                            .unwrap_or_default();
                        let transport = match &x.detail {
                            L7Detail::Dns(d) => d.transport.clone(),
                            _ => "tcp".into(),
                        };
                        let row = [
                            time_of_day(r),
                            x.detail.protocol().name().to_string(),
                            endpoint(&l.source),
                            endpoint(&l.destination),
                            transport,
                            x.status.clone().unwrap_or_default(),
                            lat,
                            format!("{}/{}", x.request_bytes, x.response_bytes),
                            l7_summary(&x.detail),
                        ];
                        writeln!(self.out, "{}", table_row(&row))?;
                    }
                    Record::Alert(a) => {
                        let ep = |e: &Option<Endpoint>| {
                            e.as_ref().map(endpoint).unwrap_or_else(|| "-".into())
                        };
                        let row = [
                            time_of_day(r),
                            "alert".to_string(),
                            ep(&a.source),
                            ep(&a.destination),
                            a.kind.clone(),
                            a.severity.to_string(),
                            String::new(),
                            String::new(),
                            a.summary.clone(),
                        ];
                        writeln!(self.out, "{}", table_row(&row))?;
                    }
                }
            }
        }
        self.first = false;
        self.out.flush()
    }

    pub fn notice(&mut self, v: &serde_json::Value) -> std::io::Result<()> {
        // Notices go to stderr in table mode so pipes of records stay clean.
        match self.format {
            Format::Table => eprintln!("fathom: {v}"),
            _ => {
                serde_json::to_writer(&mut self.out, v)?;
                writeln!(self.out)?;
            }
        }
        Ok(())
    }

    pub fn finish(&mut self) -> std::io::Result<()> {
        if self.format == Format::Json && !self.streaming {
            writeln!(self.out, "{}", if self.first { "[]" } else { "\n]" })?;
        }
        self.out.flush()
    }
}
