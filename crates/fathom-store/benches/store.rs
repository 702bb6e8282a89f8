//! Store throughput and query latency.
//!
//! Setup builds one database of 1,000,000 flows (24 h of traffic between 200 pods in 10
//! namespaces) in a temp dir, once per run, through `Store::insert` in 10k-record
//! transactions. Then:
//! - ingest: records/s through the batched background writer (`try_record` + `flush`),
//!   and through `Store::insert` with 1000-record batches;
//! - queries over the 1M rows: one pod over the whole day (~1% of rows), a 10-minute
//!   window, `--last 100`, and `--last 100` for one pod.
//!
//! `cargo bench -p fathom-store --bench store` (set CARGO_TARGET_DIR as for the tests).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fathom_model::{
    Endpoint, Flow, FlowEvent, FlowFilter, InterfaceRef, L4Info, L4Protocol, ProcessInfo, Record,
    TcpFlags, TcpInfo, Timestamp, Traffic,
};
use fathom_store::{Store, StoreConfig};

const ROWS: u64 = 1_000_000;
const PODS: u64 = 200;
const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_795_708_800 * SEC;
/// 1M flows spread over 24 h.
const STEP: u64 = 24 * 3600 * SEC / ROWS;

fn endpoint(k: u64, i: u64, server: bool) -> Endpoint {
    let ns = k % 10;
    let labels: BTreeMap<String, String> = [
        ("app", format!("svc{k}")),
        (
            "tier",
            ["front", "back", "data"][(k % 3) as usize].to_string(),
        ),
        ("pod-template-hash", format!("{:09x}", k * 7919)),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b))
    .collect();
    Endpoint {
        ip: IpAddr::V4(Ipv4Addr::new(
            10,
            ns as u8,
            k as u8,
            if server { 5 } else { 10 + (i % 200) as u8 },
        )),
        port: if server {
            [80, 443, 5432, 6379, 8080, 9092, 53][(k % 7) as usize]
        } else {
            30000 + (i % 30000) as u16
        },
        pod: Some(format!("svc{k}-{:05x}", k * 31)),
        namespace: Some(format!("ns{ns}")),
        labels,
    }
}

fn process(comm: &str, pid: u32) -> ProcessInfo {
    ProcessInfo {
        pid,
        tid: Some(pid),
        ppid: Some(1),
        comm: comm.into(),
        exe: Some(format!("/usr/local/bin/{comm}")),
        cgroup_id: Some(10_000 + u64::from(pid)),
        container_id: Some(format!("{:064x}", u64::from(pid) * 0x9E37_79B9)),
    }
}

fn flow(i: u64) -> Record {
    let t = T0 + i * STEP;
    let (a, b) = (i % PODS, (i * 7 + 3) % PODS);
    Record::from(Flow {
        time: Timestamp::from_nanos(t),
        flow_id: format!("{i:016x}"),
        event: [FlowEvent::Start, FlowEvent::Update, FlowEvent::End][(i % 3) as usize],
        source: endpoint(a, i, false),
        destination: endpoint(b, i, true),
        process: Some(process("client", 1000 + a as u32)),
        destination_process: Some(process("server", 2000 + b as u32)),
        l4: L4Info {
            protocol: L4Protocol::Tcp,
            tcp_flags: Some(TcpFlags(0x1b)),
            tcp_flags_out: Some(TcpFlags(0x1b)),
            tcp_flags_in: Some(TcpFlags(0x19)),
            icmp_type: None,
            icmp_code: None,
        },
        traffic: Traffic {
            packets_out: 10 + i % 50,
            packets_in: 12 + i % 70,
            bytes_out: 1200 + i % 9000,
            bytes_in: 40_000 + i % 100_000,
            payload_bytes_out: 700 + i % 8000,
            payload_bytes_in: 39_000 + i % 100_000,
        },
        tcp: TcpInfo {
            handshake_us: Some(80 + i % 400),
            srtt_us: Some(60 + (i % 300) as u32),
            retransmits: Some((i % 5) as u32),
            bytes_acked: Some(700 + i % 8000),
            bytes_received: Some(39_000 + i % 100_000),
        },
        first_seen: Timestamp::from_nanos(t - 3 * SEC),
        last_seen: Timestamp::from_nanos(t - SEC / 2),
        end_reason: None,
        interface: Some(InterfaceRef {
            ifindex: 4,
            name: Some("eth0".into()),
        }),
        node: "node-a".into(),
    })
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("flows.db");
        let cfg = StoreConfig {
            max_bytes: 64 << 30,
            ..StoreConfig::at(&path)
        };
        let mut store = Store::open(&cfg).expect("open");
        let started = Instant::now();
        let mut batch = Vec::with_capacity(10_000);
        for i in 0..ROWS {
            batch.push(flow(i));
            if batch.len() == 10_000 {
                store.insert(&batch).expect("insert");
                batch.clear();
            }
        }
        store.insert(&batch).expect("insert");
        let took = started.elapsed();
        store.close().expect("close");
        // Planner statistics exist from here on, as they do after the writer's first
        // retention run.
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let json = serde_json::to_string(&flow(0))
            .map(|s| s.len())
            .unwrap_or(0);
        println!(
            "setup: {ROWS} flows in {:.1} s ({:.0} records/s bulk, 10k per transaction); \
             {:.0} MiB on disk = {} bytes/row (JSON body {json} bytes)",
            took.as_secs_f64(),
            ROWS as f64 / took.as_secs_f64(),
            bytes as f64 / (1 << 20) as f64,
            bytes / ROWS,
        );
        Fixture { _dir: dir, path }
    })
}

fn ingest(c: &mut Criterion) {
    const N: u64 = 20_000;
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(N));
    let records: Vec<Record> = (0..N).map(flow).collect();

    g.bench_function("writer_try_record_flush", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("temp dir");
                let cfg = StoreConfig {
                    channel_capacity: N as usize,
                    ..StoreConfig::at(dir.path().join("f.db"))
                };
                let (writer, handle) = Store::spawn_writer(cfg).expect("writer");
                let batch = records.clone();
                let t = Instant::now();
                for r in batch {
                    writer.try_record(r);
                }
                writer.flush().expect("flush");
                total += t.elapsed();
                assert_eq!(writer.stats().dropped, 0);
                writer.shutdown();
                let _ = handle.join();
            }
            total
        })
    });

    g.bench_function("store_insert_batches_of_1000", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let store = Store::open(&StoreConfig::at(dir.path().join("f.db"))).expect("open");
                (dir, store, records.clone())
            },
            |(dir, mut store, recs)| {
                for c in recs.chunks(1000) {
                    store.insert(c).expect("insert");
                }
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// Name, filter, since, until, last.
type Case<'a> = (
    &'static str,
    &'a FlowFilter,
    Option<Timestamp>,
    Option<Timestamp>,
    Option<usize>,
);

fn queries(c: &mut Criterion) {
    let fx = fixture();
    let store = Store::open(&StoreConfig {
        max_bytes: 64 << 30,
        ..StoreConfig::at(&fx.path)
    })
    .expect("open");
    let pod = FlowFilter {
        pod: vec![format!("ns3/svc13-{:05x}", 13 * 31).parse().expect("pod")],
        ..Default::default()
    };
    let all = FlowFilter::default();
    let win_from = Timestamp::from_nanos(T0 + 12 * 3600 * SEC);
    let win_to = Timestamp::from_nanos(T0 + 12 * 3600 * SEC + 600 * SEC);

    let cases: [Case; 4] = [
        ("pod_whole_range", &pod, None, None, None),
        (
            "time_window_10min",
            &all,
            Some(win_from),
            Some(win_to),
            None,
        ),
        ("last_100", &all, None, None, Some(100)),
        ("pod_last_100", &pod, None, None, Some(100)),
    ];
    for (name, f, since, until, last) in &cases {
        let n = store.query(f, *since, *until, *last).expect("query").len();
        let plan = store
            .explain(f, *since, *until, *last)
            .expect("plan")
            .join(" | ");
        println!("query {name}: {n} records; plan: {plan}");
    }

    let mut g = c.benchmark_group("query_1M");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for (name, f, since, until, last) in cases {
        g.bench_function(name, |b| {
            b.iter(|| black_box(store.query(f, since, until, last).expect("query").len()))
        });
    }
    g.finish();
}

criterion_group!(benches, ingest, queries);
criterion_main!(benches);
