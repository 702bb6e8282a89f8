//! Agreement with Zeek on the Redis, PostgreSQL and MySQL traces of Zeek's own test suite
//! (corpus `zeek/`: traces plus the logs Zeek wrote for them).
//!
//! Each trace goes through the whole engine (`replay_file`: capture reading, TCP reassembly,
//! protocol inference from the bytes, the parser), and our records are lined up, per
//! connection and in order, with the rows of Zeek's log for that connection (matched by
//! client port). Fields are compared where they mean the same thing;
//! the per-protocol figure is agreeing fields / compared fields. Deliberate differences are
//! listed next to each protocol's comparison and not counted as disagreements:
//!
//! Redis
//! - Zeek logs no reply for a (P)SUBSCRIBE; the subscription confirmation is that command's
//!   reply for us (the extra per-channel confirmations and deliveries are messages).
//! - Zeek stops naming commands past its pipelining limit (`cmd.name` "-"); we keep pairing.
//!   Rows whose Zeek command is "-" are compared on success only.
//! - `cmd.key` is compared only where Zeek logs one (it does not for XADD, PUBLISH, …).
//!
//! PostgreSQL
//! - Zeek's `user`/`database`/`application_name` repeat the startup values on every row of a
//!   connection; they are compared on the startup row.
//! - Zeek marks a refused SSLRequest (`N`) as not successful; we report the answer
//!   (`ssl_accepted` false) and do not call it an error. Compared as the answer letter.
//!
//! MySQL
//! - Our command names are the protocol's (`COM_QUERY`, `handshake`); Zeek's are short names
//!   (`query`, `login`). Mapped one to one.
//! - Zeek's `rows` is the OK packet's affected-row count (0 for result sets); compared with
//!   our `affected_rows` (unset for result sets, counted as 0).
//! - Zeek leaves COM_STATISTICS without an outcome (its answer is a bare string, not OK/ERR);
//!   we report it answered. Not compared.

mod proto_support;

use fathom_l7::replay::{replay_file, ReplayOptions};
use fathom_model::l7::{ExchangeKind, L7Detail, L7Exchange, L7Protocol};
use proto_support::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

type Row = HashMap<String, String>;

/// Reads a Zeek log (`#fields` header) or a zeek-cut output (first line after the btest
/// banner is the header).
fn read_log(path: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut fields: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Some(f) = line.strip_prefix("#fields\t") {
            fields = Some(f.split('\t').map(str::to_string).collect());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        match &fields {
            None => fields = Some(line.split('\t').map(str::to_string).collect()),
            Some(f) => rows.push(
                f.iter()
                    .cloned()
                    .zip(line.split('\t').map(str::to_string))
                    .collect(),
            ),
        }
    }
    rows
}

/// Zeek's escaping: `\xNN` for non-printable bytes, `(empty)` for "", `-` for unset.
fn unescape(s: &str) -> Option<String> {
    if s == "-" {
        return None;
    }
    if s == "(empty)" {
        return Some(String::new());
    }
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 3 < b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 2..i + 4])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[derive(Default, Debug)]
struct Tally {
    compared: u64,
    agreed: u64,
    rows: u64,
    rows_matched: u64,
    disagreements: Vec<String>,
}

impl Tally {
    fn check(&mut self, what: &str, zeek: Option<&str>, ours: Option<&str>) {
        self.compared += 1;
        if zeek == ours {
            self.agreed += 1;
        } else if self.disagreements.len() < 40 {
            self.disagreements
                .push(format!("{what}: zeek {zeek:?} ours {ours:?}"));
        }
    }

    fn pct(&self) -> f64 {
        if self.compared == 0 {
            100.0
        } else {
            100.0 * self.agreed as f64 / self.compared as f64
        }
    }
}

struct Case {
    trace: PathBuf,
    log: PathBuf,
    name: String,
}

fn cases(root: &Path, proto_dir: &str, logs: &[&str]) -> Vec<Case> {
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("zeek/INDEX.json")).expect("INDEX.json"),
    )
    .expect("json");
    let mut v = Vec::new();
    for t in index["tests"].as_array().into_iter().flatten() {
        let btest = t["btest"].as_str().unwrap_or("");
        if !btest.contains(&format!("/protocols/{proto_dir}/")) {
            continue;
        }
        let files: Vec<&str> = t["baseline_files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str())
            .collect();
        let Some(log) = logs.iter().find(|l| files.contains(l)) else {
            continue;
        };
        let base = root
            .join("zeek")
            .join(t["baseline_dir"].as_str().unwrap_or(""));
        v.push(Case {
            trace: root.join("zeek").join(t["trace"].as_str().unwrap_or("")),
            log: base.join(log),
            name: btest.rsplit('/').next().unwrap_or(btest).to_string(),
        });
    }
    v
}

/// Our exchanges per client port for a trace, through the whole engine: `replay_file` reads
/// the capture, reassembles TCP, infers the protocol from the bytes and runs the parser.
fn ours_by_port(trace: &Path, protocol: L7Protocol) -> HashMap<u16, Vec<L7Exchange>> {
    let opts = ReplayOptions::default().with_protocols(vec![protocol]);
    let report = match replay_file(trace, &opts) {
        Ok(r) => r,
        Err(e) => *e.report,
    };
    let mut m: HashMap<u16, Vec<L7Exchange>> = HashMap::new();
    for r in report.l7() {
        m.entry(r.source.port).or_default().push(r.exchange.clone());
    }
    m
}

fn report(proto: &str, t: &Tally) {
    println!(
        "zeek {proto}: {}/{} fields agree ({:.1}%), {}/{} Zeek rows matched",
        t.agreed,
        t.compared,
        t.pct(),
        t.rows_matched,
        t.rows
    );
    for d in &t.disagreements {
        println!("  {proto} disagreement: {d}");
    }
}

fn compare(
    root: &Path,
    proto_dir: &str,
    logs: &[&str],
    protocol: L7Protocol,
    keep: impl Fn(&L7Exchange) -> bool,
    row: impl Fn(&str, &Row, &L7Exchange, &mut Tally),
) -> Tally {
    let mut t = Tally::default();
    for case in cases(root, proto_dir, logs) {
        let ours = ours_by_port(&case.trace, protocol);
        let rows = read_log(&case.log);
        let mut by_port: HashMap<u16, Vec<&Row>> = HashMap::new();
        for r in &rows {
            let port = r.get("id.orig_p").and_then(|p| p.parse().ok()).unwrap_or(0);
            by_port.entry(port).or_default().push(r);
        }
        let mut ports_sorted: Vec<_> = by_port.keys().copied().collect();
        ports_sorted.sort();
        for port in ports_sorted {
            let zrows = &by_port[&port];
            let mine: Vec<&L7Exchange> = ours
                .get(&port)
                .map(|v| v.iter().filter(|e| keep(e)).collect())
                .unwrap_or_default();
            t.rows += zrows.len() as u64;
            for (i, z) in zrows.iter().enumerate() {
                let label = format!("{} port {port} row {i}", case.name);
                match mine.get(i) {
                    Some(e) => {
                        t.rows_matched += 1;
                        row(&label, z, e, &mut t);
                    }
                    None => t.check(&format!("{label} missing"), Some("row"), None),
                }
            }
        }
    }
    t
}

fn z(r: &Row, k: &str) -> Option<String> {
    r.get(k).and_then(|v| unescape(v))
}

#[test]
fn zeek_redis_agreement() {
    let Some(root) = corpus() else { return };
    let t = compare(
        &root,
        "redis",
        &["redis.log"],
        L7Protocol::Redis,
        |e| e.kind != ExchangeKind::Message,
        |label, r, e, t| {
            let L7Detail::Redis(d) = &e.detail else {
                return;
            };
            let cmd = z(r, "cmd.name");
            let ours_cmd = d
                .command
                .as_deref()
                .and_then(|c| c.split(' ').next())
                .map(str::to_string);
            if cmd.is_some() {
                t.check(&format!("{label} cmd"), cmd.as_deref(), ours_cmd.as_deref());
            }
            if let Some(k) = z(r, "cmd.key") {
                t.check(&format!("{label} key"), Some(&k), d.key.as_deref());
            }
            let subscribe = cmd.as_deref().is_some_and(|c| c.ends_with("SUBSCRIBE"));
            let ours_success = match e.kind {
                ExchangeKind::RequestResponse | ExchangeKind::ResponseOnly => {
                    Some(if e.error { "F" } else { "T" })
                }
                _ => None,
            };
            if !subscribe {
                t.check(
                    &format!("{label} success"),
                    z(r, "success").as_deref(),
                    ours_success,
                );
            }
        },
    );
    report("redis", &t);
    assert!(t.rows > 30, "too few Zeek rows found: {}", t.rows);
    assert!(
        t.pct() >= 99.0,
        "redis agreement {:.1}% below floor",
        t.pct()
    );
}

#[test]
fn zeek_postgresql_agreement() {
    let Some(root) = corpus() else { return };
    let t = compare(
        &root,
        "postgresql",
        &["postgresql.log", "postgresql.cut"],
        L7Protocol::Postgres,
        |e| matches!(&e.detail, L7Detail::Postgres(p) if p.kind != "notification"),
        |label, r, e, t| {
            let L7Detail::Postgres(d) = &e.detail else {
                return;
            };
            let front = z(r, "frontend");
            let ours_kind = match d.kind.as_str() {
                "query" => "simple_query",
                k => k,
            };
            t.check(
                &format!("{label} frontend"),
                front.as_deref(),
                Some(ours_kind),
            );
            match front.as_deref() {
                Some("ssl_request") => {
                    let answer = d.ssl_accepted.map(|a| if a { "S" } else { "N" });
                    t.check(
                        &format!("{label} ssl answer"),
                        z(r, "backend_arg").as_deref(),
                        answer,
                    );
                }
                Some("startup") => {
                    t.check(
                        &format!("{label} user"),
                        z(r, "user").as_deref(),
                        d.user.as_deref(),
                    );
                    t.check(
                        &format!("{label} database"),
                        z(r, "database").as_deref(),
                        d.database.as_deref(),
                    );
                    t.check(
                        &format!("{label} application_name"),
                        z(r, "application_name").as_deref(),
                        d.application_name.as_deref(),
                    );
                    let ok = match d.auth_outcome.as_deref() {
                        Some("ok") => Some("T"),
                        Some(_) => Some("F"),
                        None => None,
                    };
                    t.check(&format!("{label} success"), z(r, "success").as_deref(), ok);
                }
                Some("simple_query") => {
                    t.check(
                        &format!("{label} statement"),
                        z(r, "frontend_arg").as_deref(),
                        d.statement.as_deref(),
                    );
                    t.check(
                        &format!("{label} success"),
                        z(r, "success").as_deref(),
                        Some(if e.error { "F" } else { "T" }),
                    );
                    if let Some(rows) = z(r, "rows") {
                        t.check(
                            &format!("{label} rows"),
                            Some(&rows),
                            d.rows.map(|n| n.to_string()).as_deref(),
                        );
                    }
                }
                _ => {}
            }
            if let Some(code) = z(r, "backend_arg").and_then(|a| {
                a.split(',')
                    .find_map(|f| f.strip_prefix("Code=").map(str::to_string))
            }) {
                if code != "00000" {
                    t.check(
                        &format!("{label} sqlstate"),
                        Some(&code),
                        d.error_code.as_deref(),
                    );
                }
            }
        },
    );
    report("postgresql", &t);
    assert!(t.rows > 30, "too few Zeek rows found: {}", t.rows);
    assert!(
        t.pct() >= 99.0,
        "postgresql agreement {:.1}% below floor",
        t.pct()
    );
}

#[test]
fn zeek_mysql_agreement() {
    let Some(root) = corpus() else { return };
    let t = compare(
        &root,
        "mysql",
        &["mysql.log"],
        L7Protocol::Mysql,
        |e| matches!(&e.detail, L7Detail::Mysql(m) if m.command != "greeting"),
        |label, r, e, t| {
            let L7Detail::Mysql(d) = &e.detail else {
                return;
            };
            let cmd = z(r, "cmd");
            let ours = match d.command.as_str() {
                "handshake" => "login".to_string(),
                c => c.strip_prefix("COM_").unwrap_or(c).to_ascii_lowercase(),
            };
            t.check(&format!("{label} cmd"), cmd.as_deref(), Some(&ours));
            let arg = match cmd.as_deref() {
                Some("login") | Some("change_user") => d.user.clone(),
                Some("init_db") => d.database.clone(),
                Some("query") | Some("field_list") => d.statement.clone(),
                _ => Some(String::new()),
            };
            t.check(
                &format!("{label} arg"),
                z(r, "arg").as_deref(),
                arg.as_deref(),
            );
            let success = match e.kind {
                ExchangeKind::RequestResponse | ExchangeKind::ResponseOnly => {
                    Some(if e.error { "F" } else { "T" })
                }
                _ => None,
            };
            // Zeek does not parse the COM_STATISTICS answer (a bare string); we do.
            if cmd.as_deref() != Some("statistics") {
                t.check(
                    &format!("{label} success"),
                    z(r, "success").as_deref(),
                    success,
                );
            }
            if let Some(rows) = z(r, "rows") {
                let ours_rows = d.affected_rows.unwrap_or(0).to_string();
                t.check(&format!("{label} rows"), Some(&rows), Some(&ours_rows));
            }
            if let Some(resp) = z(r, "response") {
                t.check(
                    &format!("{label} response"),
                    Some(&resp),
                    d.error_message.as_deref(),
                );
            }
        },
    );
    report("mysql", &t);
    assert!(t.rows > 30, "too few Zeek rows found: {}", t.rows);
    assert!(
        t.pct() >= 99.0,
        "mysql agreement {:.1}% below floor",
        t.pct()
    );
}

/// Traces on port 5432 that are not PostgreSQL (HTTP, MySQL) or whose PostgreSQL is broken:
/// Zeek reports no `postgresql` service for any of them. Ports do not decide for us either:
/// the other protocols must be recognised as what they are, and the broken startup must not
/// produce PostgreSQL records.
///
/// Deliberate difference: in `bad-backend-message-1` the client sends a valid StartupMessage
/// and the server answers with a ReadyForQuery whose length field is 1. Zeek drops the
/// connection's service on the parse error; we report the startup the client did send
/// (request-only: no valid answer) and count the backend bytes as skipped.
#[test]
fn zeek_not_postgresql_on_5432() {
    let Some(root) = corpus() else { return };
    let traces = root.join("zeek/testing/btest/Traces/postgresql");
    let replay = |file: &str| match replay_file(&traces.join(file), &ReplayOptions::default()) {
        Ok(r) => r,
        Err(e) => *e.report,
    };
    for (file, expect) in [
        ("http-on-port-5432.pcap", Some(L7Protocol::Http)),
        ("mysql-on-port-5432.pcap", Some(L7Protocol::Mysql)),
        ("bad-startup-message-1.pcap", None),
    ] {
        let protocols: Vec<L7Protocol> = replay(file)
            .l7()
            .map(|r| r.exchange.detail.protocol())
            .collect();
        println!("{file}: {protocols:?}");
        assert!(
            !protocols.contains(&L7Protocol::Postgres),
            "{file}: {protocols:?}"
        );
        if let Some(p) = expect {
            assert!(
                protocols.contains(&p),
                "{file}: expected {p}, got {protocols:?}"
            );
        }
    }
    let report = replay("bad-backend-message-1.pcap");
    let records: Vec<_> = report.l7().collect();
    assert_eq!(records.len(), 1);
    let L7Detail::Postgres(p) = &records[0].exchange.detail else {
        panic!("{:?}", records[0])
    };
    assert_eq!(
        (p.kind.as_str(), p.user.as_deref()),
        ("startup", Some("zeek"))
    );
    assert_eq!(records[0].exchange.kind, ExchangeKind::RequestOnly);
    let stats = report
        .stats
        .protocols
        .get(&L7Protocol::Postgres)
        .copied()
        .unwrap_or_default();
    assert_eq!(stats.skipped_bytes, 7);
}
