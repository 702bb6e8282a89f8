//! The cyclonus corpus: NetworkPolicy YAML with cyclonus' own expected reachability.
//!
//! The corpus (mattfenwick/cyclonus @ 12f646fb, data only) holds these expected outputs:
//! - `examples/cyclonus-output/analyze-probe.txt`: `cyclonus analyze --mode probe
//!   --policy-path networkpolicies/simple-example/ --probe-path examples/probe.json` (the
//!   command is given in `docs/command-analyze.md`). One Ingress/Egress/Combined 9x9 table
//!   triple per probe of `probe.json`, in order. This is the one case with both policy YAML and
//!   9x9 tables, and every comparable cell of all three tables is checked, through the
//!   evaluator and through the compiled maps.
//! - `analyze-query-traffic.txt`: the same policies with `examples/traffic.json`; the "IS
//!   ALLOWED?" answers are checked too.
//! - `analyze-all-five.txt` also has 9x9 tables, but for cyclonus' built-in example policies
//!   (`--use-example-policies`), whose YAML is not in the corpus: not a case we can run.
//!
//! Deliberate differences from the input files, none of which changes an expected cell:
//! - cells other than `.` and `X` are not compared: `N` is cyclonus' "invalid port/protocol"
//!   (probe TCP 82: no container serves it) and `?` is "unknown" (never probed);
//! - `probe.json` gives z/a, z/b, z/c the same addresses as y/a, y/b, y/c. An address has one
//!   owner in Fathom's inventory (the ipcache maps it to one identity), so duplicates get fresh
//!   addresses in 192.168.2.0/24. The only ipBlock in the policies is 0.0.0.0/24, which holds
//!   neither the original nor the replacement addresses, and probes name endpoints directly.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use fathom_policy::{
    compile, evaluate, load_paths, Action, CompileOptions, Endpoint, Endpoints, IdentityAllocator,
    LoadOptions, Packet, Peer, PolicySet, PortProtocol, Verdict, L4,
};
use serde_json::Value;

fn corpus() -> Option<PathBuf> {
    match std::env::var_os("FATHOM_CORPUS") {
        Some(p) => Some(PathBuf::from(p).join("cyclonus")),
        None => {
            println!("FATHOM_CORPUS not set: skipping");
            None
        }
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One rendered table: (from, to) → cell.
type Table = BTreeMap<(String, String), String>;

/// Parse "Ingress:" / "Egress:" / "Combined:" tables in file order.
fn parse_tables(text: &str) -> Vec<(String, Table)> {
    let mut out = Vec::new();
    let mut current: Option<(String, Vec<String>, Table)> = None;
    for line in text.lines() {
        let t = line.trim();
        if matches!(t, "Ingress:" | "Egress:" | "Combined:") {
            if let Some((name, _, table)) = current.take() {
                out.push((name, table));
            }
            current = Some((
                t.trim_end_matches(':').to_string(),
                Vec::new(),
                Table::new(),
            ));
            continue;
        }
        let Some((_, header, table)) = current.as_mut() else {
            continue;
        };
        if !t.starts_with('|') {
            continue;
        }
        let cells: Vec<String> = t
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect();
        if header.is_empty() {
            *header = cells.iter().skip(1).map(|c| c.to_lowercase()).collect();
            continue;
        }
        let from = cells[0].clone();
        if from.is_empty() {
            continue;
        }
        for (to, cell) in header.iter().zip(cells.iter().skip(1)) {
            table.insert((from.clone(), to.clone()), cell.clone());
        }
    }
    if let Some((name, _, table)) = current {
        out.push((name, table));
    }
    out
}

fn protocol(s: &str) -> PortProtocol {
    PortProtocol::parse(&s.to_uppercase()).unwrap_or_else(|| panic!("protocol {s}"))
}

/// Build the inventory of a probe file; returns it with "ns/pod" → endpoint id.
fn probe_endpoints(probe: &Value) -> (Endpoints, BTreeMap<String, Peer>) {
    let mut eps = Endpoints::new();
    let res = &probe["Resources"];
    for (ns, labels) in res["Namespaces"].as_object().expect("namespaces") {
        let labels = labels
            .as_object()
            .expect("labels")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("label").to_string()))
            .collect();
        eps.add_namespace(ns, labels).expect("namespace");
    }
    let mut ids = BTreeMap::new();
    let mut used: Vec<IpAddr> = Vec::new();
    for (i, pod) in res["Pods"].as_array().expect("pods").iter().enumerate() {
        let ns = pod["Namespace"].as_str().expect("ns");
        let name = pod["Name"].as_str().expect("name");
        let mut ep = Endpoint::new(u32::try_from(i + 1).expect("id"), ns, name);
        for (k, v) in pod["Labels"].as_object().expect("labels") {
            ep = ep.label(k, v.as_str().expect("label"));
        }
        let mut ip: IpAddr = pod["IP"].as_str().expect("ip").parse().expect("ip");
        if used.contains(&ip) {
            ip = format!("192.168.2.{}", i + 1).parse().expect("ip");
        }
        used.push(ip);
        ep = ep.ip(ip);
        for c in pod["Containers"].as_array().expect("containers") {
            if let Some(pn) = c["PortName"].as_str() {
                let port = u16::try_from(c["Port"].as_u64().expect("port")).expect("port");
                ep = ep.port(pn, port, protocol(c["Protocol"].as_str().expect("proto")));
            }
        }
        ids.insert(format!("{ns}/{name}"), Peer::Endpoint(ep.id));
        eps.add_endpoint(ep).expect("endpoint");
    }
    (eps, ids)
}

fn l4(probe: &Value) -> L4 {
    let port = u16::try_from(probe["Port"].as_u64().expect("port")).expect("port");
    match protocol(probe["Protocol"].as_str().expect("protocol")) {
        PortProtocol::Tcp => L4::Tcp { dport: port },
        PortProtocol::Udp => L4::Udp { dport: port },
        PortProtocol::Sctp => L4::Sctp { dport: port },
    }
}

fn cell(a: Action) -> &'static str {
    match a {
        Action::Allow => ".",
        Action::Deny => "X",
        Action::Audit => "A",
    }
}

fn table_cell(name: &str, v: &Verdict) -> &'static str {
    let dir = match name {
        "Ingress" => v.ingress.as_ref().map(|d| d.action),
        "Egress" => v.egress.as_ref().map(|d| d.action),
        _ => Some(v.action),
    };
    cell(dir.unwrap_or(Action::Allow))
}

#[derive(Default)]
struct Tally {
    compared: usize,
    agreed: usize,
    skipped: usize,
    mismatches: Vec<String>,
}

fn simple_example(root: &Path) -> PolicySet {
    load_paths(
        &[root.join("networkpolicies/simple-example")],
        &LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn analyze_probe_tables_agree_cell_by_cell() {
    let Some(root) = corpus() else { return };
    let set = simple_example(&root);
    let probe: Value =
        serde_json::from_str(&read(&root.join("examples/probe.json"))).expect("probe.json");
    let (eps, ids) = probe_endpoints(&probe);
    let compiled = compile(
        &set,
        &eps,
        &mut IdentityAllocator::new(),
        &CompileOptions::default(),
    )
    .expect("compile");
    let tables = parse_tables(&read(
        &root.join("examples/cyclonus-output/analyze-probe.txt"),
    ));
    let probes = probe["Probes"].as_array().expect("probes");
    assert!(
        tables.len() >= probes.len() * 3,
        "expected one table triple per probe"
    );

    let mut evaluator = Tally::default();
    let mut datapath = Tally::default();
    for (group, chunk) in tables.chunks(3).enumerate() {
        let Some(p) = probes.get(group) else {
            // Trailing triples beyond the probe list are empty in the corpus; nothing to compare.
            assert!(
                chunk.iter().all(|(_, t)| t.is_empty()),
                "unexpected non-empty table group {group}"
            );
            continue;
        };
        let l4 = l4(p);
        for (name, table) in chunk {
            for ((from, to), expected) in table {
                if expected != "." && expected != "X" {
                    evaluator.skipped += 1;
                    datapath.skipped += 1;
                    continue;
                }
                let packet = Packet::new(ids[from], ids[to], l4);
                let ev = evaluate(&set, &eps, &packet).expect("evaluate");
                let dp = compiled.evaluate(&eps, &packet).expect("datapath");
                for (tally, v, who) in [
                    (&mut evaluator, &ev, "evaluator"),
                    (&mut datapath, &dp, "datapath"),
                ] {
                    tally.compared += 1;
                    let got = table_cell(name, v);
                    if got == expected {
                        tally.agreed += 1;
                    } else {
                        tally.mismatches.push(format!("{who} {l4:?} {name} {from}->{to}: expected {expected}, got {got} ({v})"));
                    }
                }
            }
        }
    }
    println!(
        "cyclonus analyze-probe: evaluator {}/{} cells agree, datapath {}/{} ({} cells not comparable: N/?)",
        evaluator.agreed, evaluator.compared, datapath.agreed, datapath.compared, evaluator.skipped
    );
    assert!(
        evaluator.compared >= 2 * 3 * 81,
        "too few comparable cells: {}",
        evaluator.compared
    );
    assert!(
        evaluator.mismatches.is_empty(),
        "{:#?}",
        evaluator.mismatches
    );
    assert!(datapath.mismatches.is_empty(), "{:#?}", datapath.mismatches);
}

#[test]
fn analyze_query_traffic_answers_agree() {
    let Some(root) = corpus() else { return };
    let set = simple_example(&root);
    let traffic: Value =
        serde_json::from_str(&read(&root.join("examples/traffic.json"))).expect("traffic.json");
    let text = read(&root.join("examples/cyclonus-output/analyze-query-traffic.txt"));
    let expected: Vec<bool> = text
        .lines()
        .filter(|l| l.contains("IS ALLOWED?"))
        .map(|l| l.contains("TRUE"))
        .collect();
    let cases = traffic.as_array().expect("traffic");
    assert_eq!(expected.len(), cases.len());
    let mut agreed = 0;
    for (i, (case, want)) in cases.iter().zip(&expected).enumerate() {
        let mut eps = Endpoints::new();
        let side = |v: &Value, id: u32, eps: &mut Endpoints| -> Peer {
            let ip: IpAddr = v["IP"].as_str().expect("ip").parse().expect("ip");
            let Some(internal) = v.get("Internal") else {
                return Peer::Ip(ip);
            };
            let ns = internal["Namespace"].as_str().expect("ns");
            let ns_labels = internal["NamespaceLabels"]
                .as_object()
                .expect("ns labels")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("label").to_string()))
                .collect();
            let _ = eps.add_namespace(ns, ns_labels); // both sides may share the namespace
            let mut ep = Endpoint::new(id, ns, &format!("pod{id}")).ip(ip);
            for (k, v) in internal["PodLabels"].as_object().expect("pod labels") {
                ep = ep.label(k, v.as_str().expect("label"));
            }
            if let Some(name) = case["ResolvedPortName"].as_str() {
                let port =
                    u16::try_from(case["ResolvedPort"].as_u64().expect("port")).expect("port");
                ep = ep.port(name, port, PortProtocol::Tcp);
            }
            eps.add_endpoint(ep).expect("endpoint");
            Peer::Endpoint(fathom_policy::EndpointId(id))
        };
        let src = side(&case["Source"], 1, &mut eps);
        let dst = side(&case["Destination"], 2, &mut eps);
        let port = u16::try_from(case["ResolvedPort"].as_u64().expect("port")).expect("port");
        let v = evaluate(&set, &eps, &Packet::tcp(src, dst, port)).expect("evaluate");
        assert_eq!(v.action == Action::Allow, *want, "traffic case {i}: {v}");
        agreed += 1;
    }
    println!(
        "cyclonus analyze-query-traffic: {agreed}/{} answers agree",
        expected.len()
    );
}

#[test]
fn every_corpus_policy_file_loads() {
    let Some(root) = corpus() else { return };
    let dir = root.join("networkpolicies");
    let mut files = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                files.push(p);
            }
        }
    }
    files.sort();
    let set = load_paths(&files, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "cyclonus networkpolicies: {} files, {} policies loaded",
        files.len(),
        set.len()
    );
    assert_eq!(set.len(), 14, "12 files, one a List of three");
}
