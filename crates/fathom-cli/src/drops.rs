//! `fathom drops`: where and why the kernel drops packets. The per-reason totals are the
//! kernel's exact counters; the per-pod view and the list come from drop records (rate-limited
//! per reason; each record carries how many drops it stands for).

use std::collections::BTreeMap;
use std::path::PathBuf;

use fathom_agent::api::ObserveRequest;
use fathom_agent::client::{AgentClient, StreamItem, DEFAULT_SOCKET};
use fathom_model::{FlowFilter, PodSelector, Record, Timestamp};

use crate::output::{Format, Printer};
use crate::timearg::parse_time_arg;

#[derive(clap::Args)]
pub struct DropsArgs {
    #[arg(long, env = "FATHOM_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Show this many of the latest drop records.
    #[arg(long, default_value_t = 20)]
    last: usize,
    /// Keep streaming drop records.
    #[arg(long, short = 'f')]
    follow: bool,
    #[arg(long, value_parser = parse_time_arg)]
    since: Option<Timestamp>,
    /// Drops to or from this pod ([namespace/]pod).
    #[arg(long, value_parser = |s: &str| s.parse::<PodSelector>().map_err(|e| e.to_string()))]
    pod: Vec<PodSelector>,
    /// Only this drop reason (e.g. NO_SOCKET); repeatable.
    #[arg(long)]
    reason: Vec<String>,
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Format,
}

fn pod_of(r: &fathom_model::DropRecord) -> String {
    r.destination
        .as_ref()
        .and_then(|e| e.pod_name())
        .or_else(|| r.source.as_ref().and_then(|e| e.pod_name()))
        .unwrap_or_else(|| "(host)".into())
}

pub async fn run(args: DropsArgs) -> anyhow::Result<i32> {
    let client = AgentClient::new(&args.socket);
    let req = ObserveRequest {
        filter: FlowFilter {
            pod: args.pod.clone(),
            reason: args.reason.clone(),
            r#type: vec!["drop".into()],
            ..Default::default()
        },
        last: (!args.follow).then_some(args.last),
        since: args.since,
        until: None,
        follow: args.follow,
    };
    // People get a summary and the latest records; programs and -f get the record stream.
    let summary = args.output == Format::Table && !args.follow;
    let mut records = Vec::new();
    if summary {
        let st = client.status().await?;
        let mut totals: Vec<(String, u64)> = st.kernel["drops"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        totals.retain(|(k, _)| {
            args.reason.is_empty() || args.reason.iter().any(|r| r.eq_ignore_ascii_case(k))
        });
        totals.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        println!("DROPS BY REASON (kernel counters, exact, since the agent started)");
        if totals.is_empty() {
            println!("  none");
        }
        for (k, v) in &totals {
            println!("  {k:<28} {v:>10}");
        }
        client
            .observe(
                &ObserveRequest {
                    last: None,
                    ..req.clone()
                },
                |item| {
                    if let StreamItem::Record(r) = item {
                        if let Record::Drop(d) = *r {
                            records.push(d);
                        }
                    }
                    true
                },
            )
            .await?;
        let mut by_pod: BTreeMap<(String, String), u64> = BTreeMap::new();
        for d in &records {
            *by_pod.entry((pod_of(d), d.reason.clone())).or_default() +=
                1 + u64::from(d.suppressed);
        }
        let mut by_pod: Vec<_> = by_pod.into_iter().collect();
        by_pod.sort_by_key(|e| std::cmp::Reverse(e.1));
        println!("\nBY POD (from drop records in memory)");
        if by_pod.is_empty() {
            println!("  none");
        }
        for ((pod, reason), n) in by_pod.iter().take(20) {
            println!("  {pod:<28} {reason:<28} {n:>8}");
        }
        println!("\nLATEST");
    }
    let stdout = std::io::stdout();
    let mut printer = Printer::new(stdout.lock(), args.output, args.follow);
    if summary {
        let skip = records.len().saturating_sub(args.last);
        for d in records.into_iter().skip(skip) {
            printer.record(&Record::Drop(d))?;
        }
    } else {
        client
            .observe(&req, |item| match item {
                StreamItem::Record(r) => printer.record(&r).is_ok(),
                StreamItem::Notice(v) => printer.notice(&v).is_ok(),
            })
            .await?;
    }
    printer.finish()?;
    Ok(0)
}
