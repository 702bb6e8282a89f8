//! Prometheus metrics, modelled on Hubble's families (prefixed `fathom_` instead of `hubble_`)
//! so dashboards carry over. Two halves:
//! - record metrics, updated by the pipeline for every record it publishes (flows, drops, L7);
//! - a collector that reads the kernel side's exact counters and the agent's health at scrape
//!   time (lost events, per-reason kernel drops, map fill, memory).
//!
//! Cardinality: source/destination context labels are off, per namespace, per workload or per
//! pod (`metrics_context`), and ports are only labelled for destination ports of new flows.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use fathom_model::l7::L7Detail;
use fathom_model::{DropRecord, Endpoint, Flow, FlowEvent, Record};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::hub::Hub;
use crate::kernel::KernelShared;
use crate::pipeline::PipelineStats;

/// Which source/destination labels flow metrics carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsContext {
    None,
    #[default]
    Namespace,
    Workload,
    Pod,
}

impl std::str::FromStr for MetricsContext {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(MetricsContext::None),
            "namespace" => Ok(MetricsContext::Namespace),
            "workload" => Ok(MetricsContext::Workload),
            "pod" => Ok(MetricsContext::Pod),
            _ => Err(format!(
                "bad metrics context {s:?}: expected none, namespace, workload or pod"
            )),
        }
    }
}

/// `web-7d9f8c6b5-x2k4q` → `web`: Deployment pods carry a ReplicaSet hash and a pod suffix.
pub fn workload_of(pod: &str) -> &str {
    let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
    let hashy = |s: &str| {
        (4..=10).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    match parts.as_slice() {
        [suffix, hash, base] if hashy(suffix) && hashy(hash) && suffix.len() == 5 => base,
        _ => pod,
    }
}

fn context_label(ctx: MetricsContext, ep: Option<&Endpoint>) -> String {
    let Some(ep) = ep else { return String::new() };
    match (ctx, &ep.namespace, &ep.pod) {
        (MetricsContext::None, _, _) => String::new(),
        (MetricsContext::Namespace, Some(ns), _) => ns.clone(),
        (MetricsContext::Workload, Some(ns), Some(p)) => format!("{ns}/{}", workload_of(p)),
        (MetricsContext::Pod, Some(ns), Some(p)) => format!("{ns}/{p}"),
        _ => String::new(),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowLabels {
    r#type: String,
    verdict: String,
    source: String,
    destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    reason: String,
    protocol: String,
    destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlagLabels {
    flag: String,
    family: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortLabels {
    protocol: String,
    port: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DnsLabels {
    rcode: String,
    qtypes: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    status: String,
    destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    direction: String,
    r#match: String,
    action: String,
}

const FLOWS: &str = "fathom_flows_processed";
const DROPS: &str = "fathom_drop";
const TCP_FLAGS: &str = "fathom_tcp_flags";
const PORTS: &str = "fathom_port_distribution";
const DNS_QUERIES: &str = "fathom_dns_queries";
const DNS_RESPONSES: &str = "fathom_dns_responses";
const HTTP_REQUESTS: &str = "fathom_http_requests";
const HTTP_DURATION: &str = "fathom_http_request_duration_seconds";
const POLICY_VERDICTS: &str = "fathom_policy_verdicts";
/// Families fed from records; they appear in the exposition once they have a sample.
pub const RECORD_FAMILIES: [&str; 9] = [
    FLOWS,
    DROPS,
    TCP_FLAGS,
    PORTS,
    DNS_QUERIES,
    DNS_RESPONSES,
    HTTP_REQUESTS,
    HTTP_DURATION,
    POLICY_VERDICTS,
];

/// Families fed from records.
#[derive(Debug)]
pub struct RecordMetrics {
    ctx: MetricsContext,
    flows: Family<FlowLabels, Counter>,
    drops: Family<DropLabels, Counter>,
    tcp_flags: Family<FlagLabels, Counter>,
    ports: Family<PortLabels, Counter>,
    dns_queries: Family<DnsLabels, Counter>,
    dns_responses: Family<DnsLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<MethodLabels, Histogram>,
    policy_verdicts: Family<VerdictLabels, Counter>,
}

fn latency_buckets() -> Histogram {
    // 0.5 ms … ~16 s, doubling: the range services live in.
    Histogram::new((0..16).map(|i| 0.0005 * 2f64.powi(i)))
}

impl RecordMetrics {
    fn new(ctx: MetricsContext) -> Self {
        RecordMetrics {
            ctx,
            flows: Family::default(),
            drops: Family::default(),
            tcp_flags: Family::default(),
            ports: Family::default(),
            dns_queries: Family::default(),
            dns_responses: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_buckets as fn() -> Histogram),
            policy_verdicts: Family::default(),
        }
    }

    fn register(self: &Arc<Self>, reg: &mut Registry) {
        reg.register(
            FLOWS,
            "Flows (counted at their start), drops and L7 records processed, by type and verdict",
            self.flows.clone(),
        );
        reg.register(
            DROPS,
            "Packets the kernel dropped, by reason (from drop records, suppressed ones included)",
            self.drops.clone(),
        );
        reg.register(
            TCP_FLAGS,
            "TCP flags seen on ended TCP flows (one count per flag per flow)",
            self.tcp_flags.clone(),
        );
        reg.register(PORTS, "Destination ports of new flows", self.ports.clone());
        reg.register(DNS_QUERIES, "DNS queries", self.dns_queries.clone());
        reg.register(DNS_RESPONSES, "DNS responses", self.dns_responses.clone());
        reg.register(
            HTTP_REQUESTS,
            "HTTP requests by method and status",
            self.http_requests.clone(),
        );
        reg.register(
            HTTP_DURATION,
            "HTTP request latency (request to first response byte)",
            self.http_duration.clone(),
        );
        reg.register(
            POLICY_VERDICTS,
            "Policy verdicts by direction, match and action",
            self.policy_verdicts.clone(),
        );
    }

    pub fn observe(&self, r: &Record) {
        match r {
            Record::Flow(f) => self.observe_flow(f),
            Record::Drop(d) => self.observe_drop(d),
            Record::PolicyVerdict(v) => {
                // `match`: the deciding policies/rules, or the reason when none (not selected).
                let names: Vec<String> = v.policies.iter().map(|p| p.display_name()).collect();
                let m = if names.is_empty() {
                    v.reason.clone()
                } else {
                    names.join(",")
                };
                self.policy_verdicts
                    .get_or_create(&VerdictLabels {
                        direction: v.direction.clone(),
                        r#match: m,
                        action: v.verdict.as_str().into(),
                    })
                    .inc();
            }
            // Alerts count under type="alert", the alert kind in the verdict label.
            Record::Alert(a) => {
                self.flows
                    .get_or_create(&FlowLabels {
                        r#type: "alert".into(),
                        verdict: a.kind.clone(),
                        source: context_label(self.ctx, a.source.as_ref()),
                        destination: context_label(self.ctx, a.destination.as_ref()),
                    })
                    .inc();
            }
            Record::L7(l) => {
                let src = context_label(self.ctx, Some(&l.source));
                let dst = context_label(self.ctx, Some(&l.destination));
                let verdict = if l.exchange.error {
                    "ERROR"
                } else {
                    "FORWARDED"
                };
                self.flows
                    .get_or_create(&FlowLabels {
                        r#type: "l7".into(),
                        verdict: verdict.into(),
                        source: src,
                        destination: dst.clone(),
                    })
                    .inc();
                match &l.exchange.detail {
                    L7Detail::Http(h) | L7Detail::Http2(h) => {
                        let method = h.method.clone().unwrap_or_default();
                        let status = h.status.map(|s| s.to_string()).unwrap_or_default();
                        self.http_requests
                            .get_or_create(&HttpLabels {
                                method: method.clone(),
                                status,
                                destination: dst,
                            })
                            .inc();
                        if let Some(ns) = l.exchange.latency_ns {
                            self.http_duration
                                .get_or_create(&MethodLabels { method })
                                .observe(ns as f64 / 1e9);
                        }
                    }
                    L7Detail::Dns(d) => {
                        let q = DnsLabels {
                            rcode: String::new(),
                            qtypes: d.qtype.clone().unwrap_or_default(),
                        };
                        if l.exchange.request_time.is_some() {
                            self.dns_queries.get_or_create(&q).inc();
                        }
                        if l.exchange.response_time.is_some() {
                            self.dns_responses
                                .get_or_create(&DnsLabels {
                                    rcode: d.rcode.clone().unwrap_or_default(),
                                    ..q
                                })
                                .inc();
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn observe_flow(&self, f: &Flow) {
        match f.event {
            FlowEvent::Start => {
                self.flows
                    .get_or_create(&FlowLabels {
                        r#type: "flow".into(),
                        verdict: "FORWARDED".into(),
                        source: context_label(self.ctx, Some(&f.source)),
                        destination: context_label(self.ctx, Some(&f.destination)),
                    })
                    .inc();
                self.ports
                    .get_or_create(&PortLabels {
                        protocol: f.l4.protocol.name(),
                        port: f.destination.port.to_string(),
                    })
                    .inc();
            }
            FlowEvent::End => {
                if let Some(flags) = f.l4.tcp_flags {
                    let family = if f.source.ip.is_ipv4() {
                        "ipv4"
                    } else {
                        "ipv6"
                    };
                    for flag in flags.names() {
                        self.tcp_flags
                            .get_or_create(&FlagLabels {
                                flag: flag.into(),
                                family: family.into(),
                            })
                            .inc();
                    }
                }
            }
            FlowEvent::Update => {}
        }
    }

    fn observe_drop(&self, d: &DropRecord) {
        let n = 1 + u64::from(d.suppressed);
        let dst = context_label(self.ctx, d.destination.as_ref());
        self.drops
            .get_or_create(&DropLabels {
                reason: d.reason.clone(),
                protocol: d.protocol.map(|p| p.name()).unwrap_or_default(),
                destination: dst.clone(),
            })
            .inc_by(n);
        self.flows
            .get_or_create(&FlowLabels {
                r#type: "drop".into(),
                verdict: "DROPPED".into(),
                source: context_label(self.ctx, d.source.as_ref()),
                destination: dst,
            })
            .inc_by(n);
    }
}

/// Kernel-side and agent health, read at scrape time.
struct StateCollector {
    kernel: Arc<KernelShared>,
    pipeline: Arc<Mutex<PipelineStats>>,
    hub: Arc<Hub>,
    store: Option<fathom_store::StoreWriter>,
}

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateCollector")
    }
}

fn rss_bytes() -> u64 {
    let pages: u64 = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse().ok()))
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(0) as u64
}

fn counter_family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Vec<(&'static str, String)>, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut me = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(v).encode(me.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge_family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Vec<(&'static str, String)>, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut me = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(v).encode(me.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for StateCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Entry counts from the last snapshot (at most one scrape old), refreshed for the next.
        let st = self.kernel.status_snapshot();
        let p = self.pipeline.lock().map(|p| p.clone()).unwrap_or_default();
        let mut lost: Vec<(Vec<(&'static str, String)>, u64)> = st
            .lost_events
            .iter()
            .map(|(k, v)| (vec![("source", format!("ringbuf_{k}"))], *v))
            .collect();
        lost.push((
            vec![("source", "pipeline_queue".into())],
            self.kernel.events_dropped.load(Ordering::Relaxed),
        ));
        lost.push((vec![("source", "decode".into())], st.decode_errors));
        counter_family(
            &mut enc,
            "fathom_lost_events",
            "Events lost on their way to user space, by where",
            lost,
        )?;
        let l7 = self.kernel.l7.lock().map(|s| s.clone()).unwrap_or_default();
        if l7.enabled {
            let mut rows: Vec<(Vec<(&'static str, String)>, u64)> = l7
                .kernel
                .iter()
                .map(|(k, v)| (vec![("counter", format!("kernel_{k}"))], *v))
                .collect();
            for (k, v) in [
                ("records", l7.records),
                ("events", l7.events),
                ("decode_errors", l7.decode_errors),
                ("streams_opened", l7.streams_opened),
                ("streams_evicted", l7.streams_evicted),
                ("streams_unparseable", l7.streams_unparseable),
                ("gap_bytes", l7.gap_bytes),
                ("duplicates", l7.duplicates),
            ] {
                rows.push((vec![("counter", k.to_string())], v));
            }
            counter_family(
                &mut enc,
                "fathom_l7_capture",
                "Live L7 capture: kernel events sent/lost/truncated, muted connections, records, streams",
                rows,
            )?;
        }
        counter_family(
            &mut enc,
            "fathom_kernel_drops",
            "Exact kernel drop counts by reason (drop.bpf.c counters)",
            st.drops
                .iter()
                .map(|(k, v)| (vec![("reason", k.clone())], *v)),
        )?;
        counter_family(
            &mut enc,
            "fathom_kernel_counter",
            "Counters kept by Fathom's BPF programs (packets, malformed, truncated, …)",
            st.counters
                .iter()
                .map(|(k, v)| (vec![("counter", k.clone())], *v)),
        )?;
        counter_family(
            &mut enc,
            "fathom_events_received",
            "Kernel events read from the ringbufs",
            [(vec![], self.kernel.events_received.load(Ordering::Relaxed))],
        )?;
        counter_family(
            &mut enc,
            "fathom_records_published",
            "Records published by the pipeline",
            [(vec![], self.hub.published())],
        )?;
        gauge_family(
            &mut enc,
            "fathom_map_entries",
            "Entries in use in BPF hash maps",
            st.maps.iter().filter_map(|m| {
                m.entries.map(|e| {
                    (
                        vec![("map", m.name.clone()), ("object", m.object.to_string())],
                        e as i64,
                    )
                })
            }),
        )?;
        gauge_family(
            &mut enc,
            "fathom_map_capacity",
            "Maximum entries of BPF maps",
            st.maps.iter().map(|m| {
                (
                    vec![("map", m.name.clone()), ("object", m.object.to_string())],
                    i64::from(m.max_entries),
                )
            }),
        )?;
        gauge_family(
            &mut enc,
            "fathom_flows_active",
            "Flows the agent is tracking",
            [(vec![], p.flows.active as i64)],
        )?;
        gauge_family(
            &mut enc,
            "fathom_process_resident_memory_bytes",
            "Agent resident memory",
            [(vec![], rss_bytes() as i64)],
        )?;
        gauge_family(
            &mut enc,
            "fathom_hub_records",
            "Records held in memory for observe",
            [(vec![], self.hub.len() as i64)],
        )?;
        if let Some(w) = &self.store {
            let st = w.stats();
            counter_family(
                &mut enc,
                "fathom_store_records",
                "Records offered to the flow history, by outcome (dropped: the writer's queue was full)",
                [
                    (vec![("outcome", "written".to_string())], st.written),
                    (vec![("outcome", "dropped".to_string())], st.dropped),
                    (vec![("outcome", "failed".to_string())], st.failed),
                ],
            )?;
            gauge_family(
                &mut enc,
                "fathom_store_rows",
                "Records in the flow history",
                [(vec![], st.rows as i64)],
            )?;
            gauge_family(
                &mut enc,
                "fathom_store_file_bytes",
                "Flow history size on disk",
                [(vec![], st.file_bytes as i64)],
            )?;
            let mut me = enc.encode_descriptor(
                "fathom_store_lag_seconds",
                "How long the oldest record of the last batch waited before it was committed",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(st.lag.as_secs_f64()).encode(me.encode_family(&Vec::<(
                &str,
                String,
            )>::new(
            ))?)?;
        }
        Ok(())
    }
}

pub struct Metrics {
    pub records: Arc<RecordMetrics>,
    registry: Registry,
}

impl Metrics {
    pub fn new(
        ctx: MetricsContext,
        kernel: Arc<KernelShared>,
        pipeline: Arc<Mutex<PipelineStats>>,
        hub: Arc<Hub>,
        store: Option<fathom_store::StoreWriter>,
    ) -> Metrics {
        let records = Arc::new(RecordMetrics::new(ctx));
        let mut registry = Registry::default();
        records.register(&mut registry);
        registry.register_collector(Box::new(StateCollector {
            kernel,
            pipeline,
            hub,
            store,
        }));
        Metrics { records, registry }
    }

    /// Metrics that only need records (tests, replay).
    pub fn records_only(ctx: MetricsContext) -> Metrics {
        let records = Arc::new(RecordMetrics::new(ctx));
        let mut registry = Registry::default();
        records.register(&mut registry);
        Metrics { records, registry }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fathom_model::{L4Info, L4Protocol, TcpFlags, TcpInfo, Timestamp, Traffic};

    fn flow(event: FlowEvent) -> Flow {
        let mut src = Endpoint::new("10.0.0.1".parse().unwrap(), 40000);
        src.namespace = Some("x".into());
        src.pod = Some("a".into());
        let mut dst = Endpoint::new("10.0.0.2".parse().unwrap(), 80);
        dst.namespace = Some("y".into());
        dst.pod = Some("web-7d9f8c6b5-x2k4q".into());
        Flow {
            time: Timestamp(1),
            flow_id: "1".into(),
            event,
            source: src,
            destination: dst,
            process: None,
            destination_process: None,
            l4: L4Info {
                protocol: L4Protocol::Tcp,
                tcp_flags: Some(TcpFlags(0x13)),
                tcp_flags_out: None,
                tcp_flags_in: None,
                icmp_type: None,
                icmp_code: None,
            },
            traffic: Traffic::default(),
            tcp: TcpInfo::default(),
            first_seen: Timestamp(1),
            last_seen: Timestamp(1),
            end_reason: None,
            interface: None,
            node: "n".into(),
        }
    }

    #[test]
    fn families_count_records_with_context_labels() {
        let m = Metrics::records_only(MetricsContext::Workload);
        m.records.observe(&Record::from(flow(FlowEvent::Start)));
        m.records.observe(&Record::from(flow(FlowEvent::Update)));
        m.records.observe(&Record::from(flow(FlowEvent::End)));
        let text = m.encode();
        assert!(
            text.contains(r#"fathom_flows_processed_total{type="flow",verdict="FORWARDED",source="x/a",destination="y/web"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"fathom_port_distribution_total{protocol="tcp",port="80"} 1"#),
            "{text}"
        );
        for flag in ["SYN", "ACK", "FIN"] {
            assert!(
                text.contains(&format!(
                    r#"fathom_tcp_flags_total{{flag="{flag}",family="ipv4"}} 1"#
                )),
                "{text}"
            );
        }
        assert!(!text.contains(r#"flag="RST""#));
    }

    #[test]
    fn workload_names_drop_replicaset_and_pod_suffixes() {
        assert_eq!(workload_of("web-7d9f8c6b5-x2k4q"), "web");
        assert_eq!(workload_of("my-app-5f6d8b9c7d-abcde"), "my-app");
        assert_eq!(workload_of("redis"), "redis");
        assert_eq!(workload_of("db-0"), "db-0");
    }
}

#[cfg(test)]
mod dashboard_tests {
    use super::*;

    /// Every metric the shipped Grafana dashboard queries is one the agent exposes.
    #[test]
    fn dashboard_queries_only_exposed_metrics() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/grafana/fathom-dashboard.json"
        );
        let dash: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard"))
                .expect("valid JSON");
        let m = Metrics::new(
            MetricsContext::Namespace,
            Arc::new(KernelShared::default()),
            Arc::new(Mutex::new(PipelineStats::default())),
            Hub::new(1),
            None,
        );
        let exposed = m.encode();
        let mut names: Vec<&str> = exposed
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        names.extend(RECORD_FAMILIES);
        let mut checked = 0;
        for panel in dash["panels"].as_array().expect("panels") {
            for t in panel["targets"].as_array().expect("targets") {
                let expr = t["expr"].as_str().expect("expr");
                for word in expr
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| w.starts_with("fathom_"))
                {
                    let base = ["_total", "_bucket", "_sum", "_count"]
                        .iter()
                        .fold(word, |w, s| w.strip_suffix(s).unwrap_or(w));
                    assert!(
                        names.contains(&base),
                        "dashboard panel {:?} uses {word}, not exposed: {names:?}",
                        panel["title"]
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 12, "{checked}");
    }
}
