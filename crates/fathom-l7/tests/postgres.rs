//! PostgreSQL parser: hand-built conversations (message layouts from the PostgreSQL protocol
//! documentation, chapter "Frontend/Backend Protocol"), chunking invariance, garbage, limits,
//! and a loopback capture of psql and pgbench against PostgreSQL 15 on port 15432, replayed
//! through the whole engine (checked against tshark's pgsql dissector: same statements, tags
//! and row counts).

mod proto_support;

use fathom_l7::parser::{Detection, ProtocolParser};
use fathom_l7::postgres::{detect, PostgresConfig, PostgresParser};
use fathom_model::l7::postgres::PostgresMessage;
use fathom_model::l7::{ExchangeKind, L7Detail, L7Exchange, L7Protocol};
use proptest::prelude::*;
use proto_support::*;

fn pg(e: &L7Exchange) -> &PostgresMessage {
    match &e.detail {
        L7Detail::Postgres(p) => p,
        other => panic!("not postgres: {other:?}"),
    }
}

fn msg(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ty];
    v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn startup(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = 196608u32.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend(cstr(k));
        body.extend(cstr(v));
    }
    body.push(0);
    let mut v = (body.len() as u32 + 4).to_be_bytes().to_vec();
    v.extend(body);
    v
}

fn ssl_request() -> Vec<u8> {
    vec![0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]
}

fn auth(code: u32, extra: &[u8]) -> Vec<u8> {
    let mut b = code.to_be_bytes().to_vec();
    b.extend_from_slice(extra);
    msg(b'R', &b)
}

fn ready() -> Vec<u8> {
    msg(b'Z', b"I")
}

fn complete(tag: &str) -> Vec<u8> {
    msg(b'C', &cstr(tag))
}

fn data_row(cols: &[&[u8]]) -> Vec<u8> {
    let mut b = (cols.len() as u16).to_be_bytes().to_vec();
    for c in cols {
        b.extend_from_slice(&(c.len() as u32).to_be_bytes());
        b.extend_from_slice(c);
    }
    msg(b'D', &b)
}

fn row_description(names: &[&str]) -> Vec<u8> {
    let mut b = (names.len() as u16).to_be_bytes().to_vec();
    for n in names {
        b.extend(cstr(n));
        b.extend_from_slice(&[0; 18]);
    }
    msg(b'T', &b)
}

fn error(severity: &str, code: &str, message: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for (t, v) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', message),
    ] {
        b.push(t);
        b.extend(cstr(v));
    }
    b.push(0);
    msg(b'E', &b)
}

fn query(text: &str) -> Vec<u8> {
    msg(b'Q', &cstr(text))
}

fn parse(name: &str, text: &str) -> Vec<u8> {
    let mut b = cstr(name);
    b.extend(cstr(text));
    b.extend_from_slice(&[0, 0]);
    msg(b'P', &b)
}

fn bind(statement: &str) -> Vec<u8> {
    let mut b = cstr("");
    b.extend(cstr(statement));
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    msg(b'B', &b)
}

fn execute() -> Vec<u8> {
    let mut b = cstr("");
    b.extend_from_slice(&[0, 0, 0, 0]);
    msg(b'E', &b)
}

fn sync() -> Vec<u8> {
    msg(b'S', b"")
}

fn login() -> Vec<Seg> {
    vec![
        seg(C, 100, ssl_request()),
        seg(S, 110, b"N"),
        seg(
            C,
            120,
            startup(&[
                ("user", "app"),
                ("database", "shop"),
                ("application_name", "api"),
            ]),
        ),
        seg(S, 130, auth(5, b"salt")),
        seg(C, 140, msg(b'p', &cstr("md5abcdef"))),
        seg(
            S,
            150,
            [
                auth(0, b""),
                msg(b'S', &[cstr("server_version"), cstr("15.8")].concat()),
                msg(b'K', &[0; 8]),
                ready(),
            ]
            .concat(),
        ),
    ]
}

#[test]
fn ssl_refused_then_md5_login() {
    let ex = run_invariant(PostgresParser::new, &login());
    assert_eq!(ex.len(), 2);
    assert_eq!(pg(&ex[0]).kind, "ssl_request");
    assert_eq!(pg(&ex[0]).ssl_accepted, Some(false));
    assert_eq!(ex[0].status.as_deref(), Some("N"));
    assert_eq!(
        (ex[0].request_bytes, ex[0].response_bytes, ex[0].latency_ns),
        (8, 1, Some(10))
    );
    let s = pg(&ex[1]);
    assert_eq!(s.kind, "startup");
    assert_eq!(
        (
            s.user.as_deref(),
            s.database.as_deref(),
            s.application_name.as_deref()
        ),
        (Some("app"), Some("shop"), Some("api"))
    );
    assert_eq!(s.auth_outcome.as_deref(), Some("ok"));
    assert_eq!(s.auth_method.as_deref(), Some("MD5Password"));
    assert_eq!(ex[1].status.as_deref(), Some("OK"));
    assert_eq!(ex[1].latency_ns, Some(10));
    assert_eq!(
        ex[1].request_bytes,
        startup(&[
            ("user", "app"),
            ("database", "shop"),
            ("application_name", "api")
        ])
        .len() as u64
            + 15
    );
}

#[test]
fn ssl_accepted_makes_the_rest_opaque() {
    let segs = vec![
        seg(C, 1, ssl_request()),
        seg(S, 2, b"S"),
        seg(C, 3, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage"),
        seg(S, 4, b"\x16\x03\x03\x00\x7a\x02"),
    ];
    let (ex, stats) = run_cut(PostgresParser::new(), &segs, &[]);
    assert_eq!(ex.len(), 1);
    assert_eq!(pg(&ex[0]).ssl_accepted, Some(true));
    assert_eq!(stats.skipped_bytes, 0, "TLS records are not parse failures");
}

#[test]
fn gssenc_request_refused_then_accepted() {
    let gss = vec![0, 0, 0, 8, 4, 0xd2, 0x16, 0x30];
    let refused = vec![
        seg(C, 1, &gss),
        seg(S, 2, b"N"),
        seg(C, 3, startup(&[("user", "u")])),
        seg(S, 4, [auth(0, b""), ready()].concat()),
    ];
    let ex = run_invariant(PostgresParser::new, &refused);
    let kinds: Vec<_> = ex
        .iter()
        .map(|e| (pg(e).kind.as_str(), e.status.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("gssenc_request", Some("N".to_string())),
            ("startup", Some("OK".to_string()))
        ]
    );
    let accepted = vec![
        seg(C, 1, &gss),
        seg(S, 2, b"G"),
        seg(C, 3, b"\x60\x82\x02\x00gss-token"),
    ];
    let (ex, stats) = run_cut(PostgresParser::new(), &accepted, &[]);
    assert_eq!(ex.len(), 1);
    assert_eq!(pg(&ex[0]).ssl_accepted, Some(true));
    assert_eq!(stats.skipped_bytes, 0);
}

#[test]
fn login_failures() {
    let segs = vec![
        seg(C, 1, startup(&[("user", "postgres")])),
        seg(S, 2, auth(10, b"SCRAM-SHA-256\0\0")),
        seg(C, 3, msg(b'p', b"SCRAM-SHA-256\0\0\0\0\x05n,,n=")),
        seg(S, 4, auth(11, b"r=abc")),
        seg(C, 5, msg(b'p', b"c=biws,r=abc,p=xyz")),
        seg(
            S,
            6,
            error(
                "FATAL",
                "28P01",
                "password authentication failed for user \"postgres\"",
            ),
        ),
    ];
    let ex = run_invariant(PostgresParser::new, &segs);
    assert_eq!(ex.len(), 1);
    let s = pg(&ex[0]);
    assert_eq!(
        s.database.as_deref(),
        Some("postgres"),
        "database defaults to the user"
    );
    assert_eq!(s.auth_outcome.as_deref(), Some("failed"));
    assert_eq!(s.auth_method.as_deref(), Some("SASL"));
    assert_eq!(s.error_code.as_deref(), Some("28P01"));
    assert!(ex[0].error);
    assert_eq!(ex[0].status.as_deref(), Some("28P01"));
}

#[test]
fn simple_queries_with_rows_tags_and_errors() {
    let mut segs = login();
    segs.extend([
        seg(C, 200, query("SELECT id FROM t; UPDATE t SET x = 1")),
        seg(
            S,
            210,
            [
                row_description(&["id"]),
                data_row(&[b"1"]),
                data_row(&[b"2"]),
                complete("SELECT 2"),
                complete("UPDATE 7"),
                ready(),
            ]
            .concat(),
        ),
        seg(C, 300, query("SELECT * FROM missing")),
        seg(
            S,
            305,
            [
                error("ERROR", "42P01", "relation \"missing\" does not exist"),
                ready(),
            ]
            .concat(),
        ),
        seg(C, 400, query("")),
        seg(S, 401, [msg(b'I', b""), ready()].concat()),
        seg(C, 500, msg(b'X', b"")),
    ]);
    let ex = run_invariant(PostgresParser::new, &segs);
    let q = &ex[2];
    assert_eq!(
        pg(q).statement.as_deref(),
        Some("SELECT id FROM t; UPDATE t SET x = 1")
    );
    assert_eq!(pg(q).command_tags, vec!["SELECT 2", "UPDATE 7"]);
    assert_eq!(pg(q).rows, Some(2));
    assert_eq!(pg(q).affected_rows, Some(7));
    assert_eq!(q.latency_ns, Some(10));
    let e = &ex[3];
    assert!(e.error);
    assert_eq!(pg(e).error_code.as_deref(), Some("42P01"));
    assert_eq!(
        pg(e).error_message.as_deref(),
        Some("relation \"missing\" does not exist")
    );
    assert_eq!(pg(&ex[4]).statement.as_deref(), Some(""));
    assert_eq!(ex[5].kind, ExchangeKind::Message);
    assert_eq!(pg(&ex[5]).kind, "terminate");
}

#[test]
fn extended_query_pipelined_batches_and_named_statements() {
    let segs = vec![
        seg(
            C,
            10,
            [
                parse("", "SELECT $1::int"),
                bind(""),
                msg(b'D', b"P\0"),
                execute(),
                sync(),
            ]
            .concat(),
        ),
        seg(
            C,
            11,
            [parse("s1", "INSERT INTO t VALUES ($1)"), sync()].concat(),
        ),
        seg(C, 12, [bind("s1"), execute(), sync()].concat()),
        seg(
            S,
            20,
            [
                msg(b'1', b""),
                msg(b'2', b""),
                row_description(&["int4"]),
                data_row(&[b"5"]),
                complete("SELECT 1"),
                ready(),
            ]
            .concat(),
        ),
        seg(S, 21, [msg(b'1', b""), ready()].concat()),
        seg(
            S,
            22,
            [
                msg(b'2', b""),
                error("ERROR", "23505", "duplicate key"),
                ready(),
            ]
            .concat(),
        ),
    ];
    let ex = run_invariant(PostgresParser::new, &segs);
    assert_eq!(ex.len(), 3);
    assert!(ex.iter().all(|e| pg(e).kind == "extended_query"));
    assert_eq!(pg(&ex[0]).statement.as_deref(), Some("SELECT $1::int"));
    assert_eq!(pg(&ex[0]).rows, Some(1));
    assert_eq!(ex[0].latency_ns, Some(10));
    assert_eq!(
        pg(&ex[1]).statement.as_deref(),
        Some("INSERT INTO t VALUES ($1)")
    );
    assert_eq!(
        pg(&ex[2]).statement.as_deref(),
        Some("INSERT INTO t VALUES ($1)"),
        "Bind names the prepared statement"
    );
    assert!(ex[2].error);
    assert_eq!(pg(&ex[2]).error_code.as_deref(), Some("23505"));
    assert_eq!(
        ex[2].request_bytes,
        (bind("s1").len() + execute().len() + sync().len()) as u64
    );
}

#[test]
fn copy_in_and_notifications() {
    let segs = vec![
        seg(C, 1, query("COPY t FROM STDIN")),
        seg(S, 2, msg(b'G', &[0, 0, 1, 0, 0])),
        seg(C, 3, [msg(b'd', b"1\n2\n"), msg(b'c', b"")].concat()),
        seg(S, 4, [complete("COPY 2"), ready()].concat()),
        seg(
            S,
            5,
            msg(
                b'A',
                &[&[0, 0, 0, 9][..], &cstr("jobs"), &cstr("payload")].concat(),
            ),
        ),
    ];
    let ex = run_invariant(PostgresParser::new, &segs);
    assert_eq!(ex.len(), 2);
    assert_eq!(pg(&ex[0]).affected_rows, Some(2));
    assert_eq!(
        ex[0].request_bytes,
        (query("COPY t FROM STDIN").len() + msg(b'd', b"1\n2\n").len() + 5) as u64
    );
    assert_eq!(ex[1].kind, ExchangeKind::Message);
    assert_eq!(pg(&ex[1]).kind, "notification");
    assert_eq!(pg(&ex[1]).channel.as_deref(), Some("jobs"));
}

#[test]
fn mid_stream_pickup_and_unanswered() {
    let segs = vec![
        seg(
            S,
            1,
            [data_row(&[b"x"]), complete("SELECT 9"), ready()].concat(),
        ),
        seg(C, 2, query("SELECT 1")),
    ];
    let ex = run_invariant(PostgresParser::new, &segs);
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].kind, ExchangeKind::ResponseOnly);
    assert_eq!(pg(&ex[0]).rows, Some(1));
    assert_eq!(ex[1].kind, ExchangeKind::RequestOnly);
    assert_eq!(pg(&ex[1]).statement.as_deref(), Some("SELECT 1"));
}

#[test]
fn cancel_request_is_a_message() {
    let mut c = vec![0, 0, 0, 16, 4, 0xd2, 0x16, 0x2e];
    c.extend_from_slice(&[0, 0, 0, 7, 1, 2, 3, 4]);
    let ex = run_invariant(PostgresParser::new, &[seg(C, 1, c)]);
    assert_eq!(ex.len(), 1);
    assert_eq!(
        (ex[0].kind, pg(&ex[0]).kind.as_str()),
        (ExchangeKind::Message, "cancel_request")
    );
}

#[test]
fn huge_rows_and_statements_stay_bounded() {
    let cfg = PostgresConfig {
        max_message: 256,
        max_text: 64,
        ..PostgresConfig::default()
    };
    let big = vec![b'z'; 100_000];
    let text = format!("SELECT '{}'", "q".repeat(10_000));
    let segs = vec![
        seg(C, 1, query(&text)),
        seg(
            S,
            2,
            [
                data_row(&[&big]),
                data_row(&[b"small"]),
                complete("SELECT 2"),
                ready(),
            ]
            .concat(),
        ),
    ];
    let ex = run_invariant(|| PostgresParser::with_config(cfg), &segs);
    assert_eq!(pg(&ex[0]).rows, Some(2));
    assert_eq!(pg(&ex[0]).statement.as_ref().map(String::len), Some(64));
    assert_eq!(ex[0].request_bytes, query(&text).len() as u64);
    let (_, stats) = run_cut(PostgresParser::with_config(cfg), &segs, &[1000]);
    assert_eq!((stats.skipped_bytes, stats.overflow_bytes), (0, 0));
}

#[test]
fn gap_resynchronises_on_message_boundaries() {
    let mut p = PostgresParser::new();
    let mut out = Vec::new();
    let q = query("SELECT 1");
    p.feed(C, 1, &q, &mut out);
    let resp = [
        row_description(&["a"]),
        data_row(&[b"1"]),
        complete("SELECT 1"),
        ready(),
    ]
    .concat();
    p.feed(S, 2, &resp[..7], &mut out);
    p.gap(S, 20);
    // The rest of a row, then the answer to the next query.
    p.feed(S, 3, &resp[27..], &mut out);
    p.feed(C, 4, &query("SELECT 2"), &mut out);
    p.feed(S, 5, &[complete("SELECT 0"), ready()].concat(), &mut out);
    p.finish(6, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(pg(&out[0]).statement.as_deref(), Some("SELECT 1"));
    assert_eq!(pg(&out[1]).statement.as_deref(), Some("SELECT 2"));
    assert_eq!(pg(&out[1]).command_tags, vec!["SELECT 0"]);
    assert_eq!(p.stats().gap_bytes, 20);
}

#[test]
fn detection() {
    assert_eq!(detect(C, &ssl_request()), Detection::Match);
    assert_eq!(detect(C, &startup(&[("user", "a")])), Detection::Match);
    assert_eq!(detect(C, &[0, 0]), Detection::NeedMore);
    assert_eq!(detect(C, b"SSH-2.0-OpenSSH"), Detection::NoMatch);
    assert_eq!(detect(S, &auth(10, b"SCRAM-SHA-256\0\0")), Detection::Match);
    assert_eq!(detect(S, b"N"), Detection::NoMatch);
}

#[test]
fn loopback_capture_of_psql_and_pgbench() {
    let (all, stats) = replay_capture(&data("psql.pcap"), &[L7Protocol::Postgres]);
    assert_eq!(all.len(), 8);
    assert_eq!((stats.skipped_bytes, stats.overflow_bytes), (0, 0));
    // psql session: SSLRequest (N), SCRAM login, 13 queries, a notification, Terminate.
    let s = &all[0];
    let kinds: Vec<&str> = s.iter().map(|e| pg(e).kind.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "query").count(), 13);
    assert_eq!(pg(&s[1]).auth_method.as_deref(), Some("SASL"));
    assert_eq!(pg(&s[1]).auth_outcome.as_deref(), Some("ok"));
    let select = s
        .iter()
        .find(|e| pg(e).statement.as_deref() == Some("SELECT * FROM t ORDER BY i;"))
        .expect("select");
    assert_eq!(
        (pg(select).rows, pg(select).command_tags.clone()),
        (Some(3), vec!["SELECT 3".to_string()])
    );
    let missing = s.iter().find(|e| e.error).expect("error");
    assert_eq!(pg(missing).error_code.as_deref(), Some("42P01"));
    assert!(s
        .iter()
        .any(|e| pg(e).kind == "notification" && pg(e).channel.as_deref() == Some("chan")));
    // Wrong password, then a database that does not exist.
    assert_eq!(pg(&all[1][1]).error_code.as_deref(), Some("28P01"));
    assert_eq!(pg(&all[3][1]).error_code.as_deref(), Some("3D000"));
    assert_eq!(
        pg(&all[2][0]).application_name.as_deref(),
        Some("fathom-test")
    );
    // pgbench -M extended (its setup connection is all[4]): 2 transactions of 7 statements, each its own Sync batch.
    let ext: Vec<_> = all[5]
        .iter()
        .filter(|e| pg(e).kind == "extended_query")
        .collect();
    assert_eq!(ext.len(), 14);
    assert!(ext
        .iter()
        .all(|e| e.kind == ExchangeKind::RequestResponse && !e.error));
    // pgbench -M prepared -S (its setup connection is all[6]): one Parse+Sync, then 3
    // Bind/Execute by statement name.
    let prep: Vec<_> = all[7]
        .iter()
        .filter(|e| pg(e).kind == "extended_query")
        .collect();
    assert_eq!(prep.len(), 4);
    assert!(prep.iter().all(|e| pg(e).statement.as_deref()
        == Some("SELECT abalance FROM pgbench_accounts WHERE aid = $1;")));
    assert_eq!(prep.iter().map(|e| pg(e).rows.unwrap_or(0)).sum::<u64>(), 3);
}

fn conversation() -> Vec<Seg> {
    let mut s = login();
    s.extend([
        seg(
            C,
            200,
            [
                query("SELECT 1"),
                parse("", "SELECT 2"),
                bind(""),
                execute(),
                sync(),
            ]
            .concat(),
        ),
        seg(
            S,
            210,
            [
                row_description(&["a"]),
                data_row(&[b"1"]),
                complete("SELECT 1"),
                ready(),
                msg(b'1', b""),
                msg(b'2', b""),
                data_row(&[b"2"]),
                complete("SELECT 1"),
                ready(),
            ]
            .concat(),
        ),
        seg(
            S,
            220,
            msg(b'A', &[&[0, 0, 0, 1][..], &cstr("c"), &cstr("p")].concat()),
        ),
        seg(C, 230, msg(b'X', b"")),
    ]);
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn chunking_never_changes_exchanges(cuts in prop::collection::vec(1usize..40, 1..8)) {
        let segs = conversation();
        let whole = run(PostgresParser::new(), &segs);
        prop_assert_eq!(run_cut(PostgresParser::new(), &segs, &cuts).0, whole);
    }

    #[test]
    fn garbage_never_panics(chunks in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..300)), 0..12)) {
        let mut p = PostgresParser::with_config(PostgresConfig { max_message: 128, ..PostgresConfig::default() });
        let mut out = Vec::new();
        for (i, (to_server, bytes)) in chunks.iter().enumerate() {
            p.feed(if *to_server { C } else { S }, i as u64, bytes, &mut out);
            if i % 5 == 4 {
                p.gap(if *to_server { S } else { C }, 3);
            }
        }
        p.finish(99, &mut out);
    }

    #[test]
    fn shuffled_messages_never_panic(picks in prop::collection::vec((any::<bool>(), 0usize..12), 0..30)) {
        let front = [query("x"), parse("a", "b"), bind("a"), execute(), sync(), msg(b'X', b""), ssl_request(), startup(&[("user", "u")]), msg(b'p', b"pw"), msg(b'd', b"d"), msg(b'c', b""), msg(b'H', b"")];
        let back = [ready(), complete("SELECT 1"), data_row(&[b"a"]), error("ERROR", "1", "m"), error("FATAL", "2", "m"), auth(0, b""), auth(5, b"salt"), b"S".to_vec(), b"N".to_vec(), msg(b'1', b""), msg(b'A', b"\0\0\0\x01c\0p\0"), row_description(&["x"])];
        let segs: Vec<Seg> = picks.iter().enumerate().map(|(i, (c, k))| if *c { seg(C, i as u64, &front[*k]) } else { seg(S, i as u64, &back[*k]) }).collect();
        let whole = run(PostgresParser::new(), &segs);
        prop_assert_eq!(run_bytewise(PostgresParser::new(), &segs), whole);
    }
}
