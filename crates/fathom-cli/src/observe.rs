//! `fathom observe`: hubble-like filters over the agent's flows.

use std::path::PathBuf;

use fathom_agent::api::ObserveRequest;
use fathom_agent::client::{AgentClient, StreamItem, DEFAULT_SOCKET};
use fathom_model::filter::{parse_cidr, parse_protocol, LabelSelector};
use fathom_model::l7filter::{parse_l7_protocol, L7Filter, PathRegex, StatusMatch};
use fathom_model::{FlowEvent, FlowFilter, PodSelector, Timestamp};

use crate::output::{Format, Printer};
use crate::timearg::parse_time_arg;

fn parse_event(s: &str) -> Result<FlowEvent, String> {
    match s {
        "start" => Ok(FlowEvent::Start),
        "update" => Ok(FlowEvent::Update),
        "end" => Ok(FlowEvent::End),
        _ => Err(format!("bad event {s:?}: expected start, update or end")),
    }
}

/// `--protocol` takes transport and application protocols alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyProtocol {
    L4(fathom_model::L4Protocol),
    L7(fathom_model::l7::L7Protocol),
}

fn parse_any_protocol(s: &str) -> Result<AnyProtocol, String> {
    if let Ok(p) = parse_protocol(s) {
        return Ok(AnyProtocol::L4(p));
    }
    parse_l7_protocol(s).map(AnyProtocol::L7).map_err(|_| {
        format!(
            "bad protocol {s:?}: expected tcp, udp, icmp, icmpv6, sctp, http, http2, grpc, dns, redis, kafka, postgres, mysql or tls"
        )
    })
}

#[derive(clap::Args)]
pub struct ObserveArgs {
    #[arg(long, env = "FATHOM_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Only the last N matching records.
    #[arg(long)]
    last: Option<usize>,
    /// Keep streaming new records.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Records from this time on: a duration back from now (2h) or an RFC 3339 time.
    #[arg(long, value_parser = parse_time_arg)]
    since: Option<Timestamp>,
    /// Records up to this time (same forms as --since).
    #[arg(long, value_parser = parse_time_arg)]
    until: Option<Timestamp>,
    /// Either side is this pod: [namespace/]pod, namespace/ or a name prefix ending in *.
    #[arg(long, value_parser = |s: &str| s.parse::<PodSelector>().map_err(|e| e.to_string()))]
    pod: Vec<PodSelector>,
    #[arg(long, value_parser = |s: &str| s.parse::<PodSelector>().map_err(|e| e.to_string()))]
    from_pod: Vec<PodSelector>,
    #[arg(long, value_parser = |s: &str| s.parse::<PodSelector>().map_err(|e| e.to_string()))]
    to_pod: Vec<PodSelector>,
    /// Either side's address is in this CIDR (or is this IP).
    #[arg(long, value_parser = |s: &str| parse_cidr(s).map_err(|e| e.to_string()))]
    ip: Vec<fathom_model::filter::IpNetArg>,
    #[arg(long, value_parser = |s: &str| parse_cidr(s).map_err(|e| e.to_string()))]
    from_ip: Vec<fathom_model::filter::IpNetArg>,
    #[arg(long, value_parser = |s: &str| parse_cidr(s).map_err(|e| e.to_string()))]
    to_ip: Vec<fathom_model::filter::IpNetArg>,
    /// Either side's port.
    #[arg(long)]
    port: Vec<u16>,
    /// tcp, udp, icmp, icmpv6, sctp; or an L7 protocol: http, http2, grpc, dns, redis,
    /// kafka, postgres, mysql, tls (L7 records only).
    #[arg(long, value_parser = parse_any_protocol)]
    protocol: Vec<AnyProtocol>,
    /// HTTP status of L7 records: a code (404) or a class (5+ or 5xx).
    #[arg(long, value_parser = |s: &str| StatusMatch::parse(s).map_err(|e| e.to_string()))]
    http_status: Vec<StatusMatch>,
    /// HTTP method of L7 records (GET, POST, …).
    #[arg(long)]
    http_method: Vec<String>,
    /// Regex over the HTTP request target (path and query) of L7 records.
    #[arg(long, value_parser = |s: &str| PathRegex::parse(s).map_err(|e| e.to_string()))]
    http_path: Vec<PathRegex>,
    /// DNS query name of L7 records (case and trailing dot ignored; *.example.com for below it).
    #[arg(long)]
    dns_query: Vec<String>,
    /// Either side's pod has this label (key=value or key); repeat to require several.
    #[arg(long, value_parser = |s: &str| s.parse::<LabelSelector>().map_err(|e| e.to_string()))]
    label: Vec<LabelSelector>,
    /// A process on either side has this command name.
    #[arg(long)]
    comm: Vec<String>,
    /// Flow events to show: start, update, end.
    #[arg(long, value_parser = parse_event)]
    event: Vec<FlowEvent>,
    /// Record types: flow, l7, drop, policy-verdict, alert.
    #[arg(long = "type")]
    types: Vec<String>,
    /// Policy verdicts to show: DROPPED, AUDIT, FORWARDED (policy-verdict records only).
    #[arg(long)]
    verdict: Vec<fathom_model::PolicyVerdict>,
    /// Name the policies and rules behind each policy verdict in table output.
    #[arg(long)]
    print_policy_names: bool,
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Format,
}

impl ObserveArgs {
    pub fn request(&self) -> ObserveRequest {
        ObserveRequest {
            filter: FlowFilter {
                pod: self.pod.clone(),
                from_pod: self.from_pod.clone(),
                to_pod: self.to_pod.clone(),
                ip: self.ip.clone(),
                from_ip: self.from_ip.clone(),
                to_ip: self.to_ip.clone(),
                port: self.port.clone(),
                protocol: self
                    .protocol
                    .iter()
                    .filter_map(|p| match p {
                        AnyProtocol::L4(p) => Some(*p),
                        AnyProtocol::L7(_) => None,
                    })
                    .collect(),
                label: self.label.clone(),
                comm: self.comm.clone(),
                r#type: self.types.clone(),
                event: self.event.clone(),
                reason: Vec::new(),
                verdict: self.verdict.clone(),
                l7: L7Filter {
                    protocol: self
                        .protocol
                        .iter()
                        .filter_map(|p| match p {
                            AnyProtocol::L7(p) => Some(*p),
                            AnyProtocol::L4(_) => None,
                        })
                        .collect(),
                    http_status: self.http_status.clone(),
                    http_method: self.http_method.clone(),
                    http_path: self.http_path.clone(),
                    dns_query: self.dns_query.clone(),
                },
            },
            last: self.last,
            since: self.since,
            until: self.until,
            follow: self.follow,
        }
    }
}

/// `fathom alerts`: observe restricted to alert records.
pub async fn alerts(mut args: ObserveArgs) -> anyhow::Result<i32> {
    args.types = vec!["alert".to_string()];
    run(args).await
}

pub async fn run(args: ObserveArgs) -> anyhow::Result<i32> {
    let req = args.request();
    let client = AgentClient::new(&args.socket);
    let stdout = std::io::stdout();
    let mut printer = Printer::new(stdout.lock(), args.output, args.follow)
        .with_policy_names(args.print_policy_names);
    let mut io_err = None;
    client
        .observe(&req, |item| {
            let r = match item {
                StreamItem::Record(r) => printer.record(&r),
                StreamItem::Notice(v) => printer.notice(&v),
            };
            match r {
                Ok(()) => true,
                // The reader went away (| head): stop quietly.
                Err(e) => {
                    io_err = Some(e);
                    false
                }
            }
        })
        .await?;
    if io_err.is_none() {
        printer.finish()?;
    }
    Ok(0)
}
