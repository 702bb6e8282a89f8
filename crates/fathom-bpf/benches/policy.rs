//! Benchmarks of policy.bpf.c, printed as figures and ratios against a baseline measured in
//! the same run (no thresholds: `make bench` reports, it does not judge).
//!
//! 1. Per-packet cost with BPF_PROG_TEST_RUN at 10, 1k, 10k and 100k policy map entries:
//!    the lookup path (conntrack off: every packet is judged, ipcache + policy LPM) and the
//!    established path (conntrack hit). Ratio 100k/10 shows how flat it is. A TC program that
//!    does nothing (`probe_tc_noop`), run with the same packet in the same run, is the
//!    baseline: gross - baseline = net, the policy program's own cost.
//! 2. Applying a 10k-rule policy (100 pods x 100 port rules: parse + validate + compile +
//!    write the standby slot + flip) vs `iptables-restore` of the 10k equivalent rules into a
//!    scratch network namespace (the host's iptables are never touched).
//!
//! Run as root: `cargo bench -p fathom-bpf --bench policy`.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use fathom_bpf::abi::policy::POLICY_LEVEL_EXACT;
use fathom_bpf::baseline::TcBaseline;
use fathom_bpf::policy::{PolicyConfig, PolicyDatapath};
use fathom_policy::{
    compile, load_str, CompileOptions, Endpoint, Endpoints, IdentityAllocator, LoadOptions,
};

/// The allocator of the fathom binary, whose agent does the applies in the product.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PEER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const REPEAT: u32 = 200_000;
/// Runs of REPEAT packets per figure; the best is kept (other work on the machine only adds).
const ROUNDS: usize = 30;
const APPLY_ROUNDS: usize = 5;

fn frame(dport: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&PEER.octets());
    f.extend_from_slice(&LOCAL.octets());
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    f
}

/// `n` policy map entries spread over endpoints of 100 entries each: a default-deny wildcard
/// root, a root for one peer identity (default deny, "exact ports exist") and 98 exact TCP
/// ports allowed from that peer; and an ipcache of n/10 + 2 entries. Endpoint 1 is the one
/// under test; its peer 10.77.0.2 has identity 256.
type PolicyEntries = Vec<([u8; 16], [u8; 8])>;
type IpcacheEntries = Vec<([u8; 20], [u8; 8])>;

fn synthetic(n: usize) -> (PolicyEntries, IpcacheEntries) {
    let key = |prefixlen: u32, ep: u32, peer: u32, port: u16| {
        let mut k = [0u8; 16];
        k[0..4].copy_from_slice(&prefixlen.to_ne_bytes());
        k[4..8].copy_from_slice(&ep.to_ne_bytes());
        k[8..12].copy_from_slice(&peer.to_ne_bytes());
        k[12] = 0; // ingress
                   // Bits beyond prefixlen are zero (policy.h): a root (72) names no protocol and no
                   // port, or the program's root lookups miss and the endpoint counts as unselected.
        if prefixlen >= 80 {
            k[13] = 6;
        }
        k[14..16].copy_from_slice(&port.to_be_bytes());
        k
    };
    let val = |action: u8, levels: u8, id: u32| {
        let mut v = [0u8; 8];
        v[0] = action;
        v[1] = levels;
        v[4..8].copy_from_slice(&id.to_ne_bytes());
        v
    };
    let mut policy = Vec::with_capacity(n);
    let per_ep = 100usize.min(n);
    let mut ep = 0u32;
    while policy.len() < n {
        ep += 1;
        policy.push((key(72, ep, 0, 0), val(2, 0, 1)));
        policy.push((key(72, ep, 256, 0), val(2, POLICY_LEVEL_EXACT, 1)));
        for i in 0..per_ep - 2 {
            if policy.len() >= n {
                break;
            }
            policy.push((key(96, ep, 256, 1000 + i as u16), val(1, 0, 2)));
        }
    }
    let ipkey = |prefixlen: u32, addr: Ipv4Addr| {
        let mut k = [0u8; 20];
        k[0..4].copy_from_slice(&prefixlen.to_ne_bytes());
        k[4..20].copy_from_slice(&addr.to_ipv6_mapped().octets());
        k
    };
    let ipval = |id: u32| {
        let mut v = [0u8; 8];
        v[0..4].copy_from_slice(&id.to_ne_bytes());
        v
    };
    let mut ipcache = vec![(ipkey(96, Ipv4Addr::UNSPECIFIED), ipval(2))];
    for i in 0..(n / 10 + 1) as u32 {
        let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 77, 0, 2)) + i);
        ipcache.push((ipkey(128, a), ipval(256 + i)));
    }
    (policy, ipcache)
}

/// One loaded datapath with `n` entries and its benchmark packet.
fn datapath(n: usize, conntrack: bool) -> (PolicyDatapath, Vec<u8>) {
    let cfg = PolicyConfig {
        policy_capacity: (n as u32 + 16).max(1024),
        ipcache_capacity: (n as u32 / 10 + 16).max(1024),
        conntrack,
        ..PolicyConfig::default()
    };
    let mut dp = PolicyDatapath::load(&cfg).expect("load policy.bpf.c (root?)");
    let (policy, ipcache) = synthetic(n);
    dp.apply(&policy, &ipcache).expect("apply");
    dp.set_endpoint(1, 1).expect("endpoint");
    let pkt = frame(1000 + (n.min(100) as u16 / 2));
    let (ret, _) = dp.test_run(true, &pkt, 10_000).expect("test run"); // warm up
    assert_eq!(ret, -1, "the benchmark packet must be allowed");
    // ... and allowed by its exact-port rule (decision 2), not by "no policy selects the
    // endpoint": the figure must include the level lookups.
    let by_rule = dp.counters().get(&2).map_or(0, |c| c.packets);
    assert!(
        by_rule > 0,
        "the benchmark packet went around the policy: {:?}",
        dp.stats()
    );
    (dp, pkt)
}

/// Best gross ns per packet of every (size, conntrack) datapath and of the baseline right
/// after it, over ROUNDS rounds that visit every datapath in turn: each figure's samples are
/// spread over the whole run, so a busy moment on the machine cannot spoil one size only.
fn per_packet(sizes: &[usize], base: &TcBaseline) -> Vec<[f64; 4]> {
    let dps: Vec<[(PolicyDatapath, Vec<u8>); 2]> = sizes
        .iter()
        .map(|&n| [datapath(n, false), datapath(n, true)])
        .collect();
    let mut best = vec![[f64::MAX; 4]; sizes.len()];
    for _ in 0..ROUNDS {
        for (i, pair) in dps.iter().enumerate() {
            for (j, (dp, pkt)) in pair.iter().enumerate() {
                let (ret, d) = dp.test_run(true, pkt, REPEAT).expect("test run");
                assert_eq!(ret, -1, "the benchmark packet must be allowed");
                let (_, b) = base.test_run(pkt, REPEAT).expect("baseline run");
                best[i][2 * j] = best[i][2 * j].min(d.as_nanos() as f64);
                best[i][2 * j + 1] = best[i][2 * j + 1].min(b.as_nanos() as f64);
            }
        }
    }
    best
}

/// 100 pods, each selected by one NetworkPolicy with 100 single-port ingress rules.
fn ten_k_rules() -> (String, Endpoints, Vec<String>) {
    let mut eps = Endpoints::new();
    eps.add_namespace("bench", Default::default()).expect("ns");
    let mut docs = Vec::new();
    let mut iptables = vec!["*filter".to_string(), ":FORWARD DROP [0:0]".to_string()];
    for p in 0..100u32 {
        let ip = Ipv4Addr::new(10, 78, (p / 200) as u8, (p % 200 + 10) as u8);
        eps.add_endpoint(
            Endpoint::new(p + 1, "bench", &format!("p{p}"))
                .label("app", &format!("p{p}"))
                .ip(IpAddr::V4(ip)),
        )
        .expect("endpoint");
        let mut rules = String::new();
        for r in 0..100u32 {
            let port = 1000 + r;
            let from = (p + r) % 100;
            rules.push_str(&format!(
                "  - from: [{{podSelector: {{matchLabels: {{app: p{from}}}}}}}]\n    ports: [{{port: {port}}}]\n"
            ));
            let src = Ipv4Addr::new(10, 78, (from / 200) as u8, (from % 200 + 10) as u8);
            iptables.push(format!(
                "-A FORWARD -s {src}/32 -d {ip}/32 -p tcp -m tcp --dport {port} -j ACCEPT"
            ));
        }
        docs.push(format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p{p}, namespace: bench}}\nspec:\n  podSelector: {{matchLabels: {{app: p{p}}}}}\n  ingress:\n{rules}"
        ));
    }
    iptables.push("COMMIT".into());
    (docs.join("---\n"), eps, iptables)
}

/// CPU time of this thread (user + system): unlike wall time, it does not grow when other
/// work on the machine takes the CPU away.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time (user + system) of every waited-for child process so far.
fn children_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One apply: (wall, CPU) in total, map entries, and the CPU time of the stages:
/// parse+validate, compile, kernel write+flip.
fn fathom_apply(docs: &str, eps: &Endpoints) -> ((Duration, Duration), usize, [Duration; 3]) {
    let mut dp = PolicyDatapath::load(&PolicyConfig::default()).expect("load");
    let t = Instant::now();
    let c0 = thread_cpu();
    let set = load_str("bench.yaml", docs, &LoadOptions::default()).expect("load docs");
    let c1 = thread_cpu();
    let c = compile(
        &set,
        eps,
        &mut IdentityAllocator::new(),
        &CompileOptions::default(),
    )
    .expect("compile");
    let c2 = thread_cpu();
    let policy: Vec<_> = c
        .policy_map_entries()
        .iter()
        .map(|(k, v)| (k.to_bytes(), v.to_bytes()))
        .collect();
    let ipcache: Vec<_> = c
        .ipcache_map_entries()
        .iter()
        .map(|(k, v)| (k.to_bytes(), v.to_bytes()))
        .collect();
    dp.apply(&policy, &ipcache).expect("apply");
    let c3 = thread_cpu();
    let wall = t.elapsed();
    ((wall, c3 - c0), policy.len(), [c1 - c0, c2 - c1, c3 - c2])
}

/// (wall, CPU of the iptables-restore process).
fn iptables_restore(rules: &[String]) -> Option<(Duration, Duration)> {
    let ns = format!("fathom-bench-{}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    let file = std::env::temp_dir().join(format!("{ns}.rules"));
    let result = (|| {
        std::fs::write(&file, rules.join("\n") + "\n").ok()?;
        let t = Instant::now();
        let c0 = children_cpu();
        let st = Command::new("ip")
            .args(["netns", "exec", &ns, "iptables-restore"])
            .stdin(std::fs::File::open(&file).ok()?)
            .status()
            .ok()?;
        let d = (t.elapsed(), children_cpu() - c0);
        st.success().then_some(d)
    })();
    let _ = std::fs::remove_file(&file);
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    result
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` / test discovery
    }
    let base = TcBaseline::load().expect("load probe_tc_noop (root?)");
    println!(
        "policy.bpf.c per packet (BPF_PROG_TEST_RUN, best of {ROUNDS} x {REPEAT} runs; net = gross - baseline, \
         baseline = a TC program that returns TC_ACT_OK, same packet, measured right after):"
    );
    println!(
        "{:>8}  {:>10} {:>10} {:>10}  {:>10} {:>10} {:>10}",
        "entries", "new gross", "baseline", "new net", "est gross", "baseline", "est net"
    );
    let sizes = [10usize, 1_000, 10_000, 100_000];
    let mut rows = Vec::new();
    for (&n, [lookup, b1, est, b2]) in sizes.iter().zip(per_packet(&sizes, &base)) {
        println!(
            "{n:>8}  {lookup:>10.1} {b1:>10.1} {:>10.1}  {est:>10.1} {b2:>10.1} {:>10.1}",
            lookup - b1,
            est - b2
        );
        rows.push((lookup, lookup - b1, est, est - b2));
    }
    if let (Some(a), Some(z)) = (rows.first(), rows.last()) {
        println!(
            "ratio 100k/10: new connection net {:.2} (gross {:.2}), established net {:.2} (gross {:.2})",
            z.1 / a.1,
            z.0 / a.0,
            z.3 / a.3,
            z.2 / a.2
        );
    }

    let (docs, eps, rules) = ten_k_rules();
    // Best of APPLY_ROUNDS each, alternating, compared by CPU time (user + system of the
    // applying thread / of the iptables-restore process; wall time is printed too, but on a
    // shared machine it mostly measures the neighbours).
    let mut fathom_runs = Vec::new();
    let mut ipt_runs = Vec::new();
    for _ in 0..APPLY_ROUNDS {
        fathom_runs.push(fathom_apply(&docs, &eps));
        if let Some(r) = iptables_restore(&rules) {
            ipt_runs.push(r);
        }
    }
    fathom_runs.sort_by_key(|r| r.0 .1);
    let ((wall, cpu), entries, [parse, comp, write]) = fathom_runs[0];
    let best_wall = fathom_runs.iter().map(|r| r.0 .0).min().unwrap_or(wall);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "apply 10k rules (100 pods x 100 ports, best of {APPLY_ROUNDS}): fathom CPU {:.1} ms (wall {:.1}) for {entries} map entries = parse+validate {:.1} + compile {:.1} + kernel write+flip {:.1} (CPU)",
        ms(cpu),
        ms(best_wall),
        ms(parse),
        ms(comp),
        ms(write)
    );
    let ipt = ipt_runs
        .iter()
        .map(|r| r.1)
        .min()
        .zip(ipt_runs.iter().map(|r| r.0).min());
    match ipt {
        Some((ipt_cpu, ipt_wall)) => println!(
            "iptables-restore of the same {} rules in a scratch netns (best of {APPLY_ROUNDS}): CPU {:.1} ms (wall {:.1}); fathom/iptables CPU {:.2}, wall {:.2}",
            rules.len() - 3,
            ms(ipt_cpu),
            ms(ipt_wall),
            cpu.as_secs_f64() / ipt_cpu.as_secs_f64(),
            best_wall.as_secs_f64() / ipt_wall.as_secs_f64()
        ),
        None => println!("iptables-restore unavailable (install iptables): no baseline"),
    }
}
