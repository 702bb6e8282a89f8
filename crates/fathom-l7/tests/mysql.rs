//! MySQL/MariaDB parser: hand-built conversations (packet layouts from the MySQL client/server
//! protocol documentation), chunking invariance, garbage, limits, 16 MB multi-packet messages,
//! and a loopback capture of the mariadb client against MariaDB 10.11 on port 13306, replayed
//! through the whole engine (checked against tshark's mysql dissector: same commands,
//! statements, affected rows, error codes).

mod proto_support;

use fathom_l7::mysql::{detect, MysqlConfig, MysqlParser};
use fathom_l7::parser::{Detection, ProtocolParser};
use fathom_model::l7::mysql::MysqlMessage;
use fathom_model::l7::{ExchangeKind, L7Detail, L7Exchange, L7Protocol};
use proptest::prelude::*;
use proto_support::*;

fn my(e: &L7Exchange) -> &MysqlMessage {
    match &e.detail {
        L7Detail::Mysql(m) => m,
        other => panic!("not mysql: {other:?}"),
    }
}

const PROTOCOL_41: u32 = 0x200;
const SECURE: u32 = 0x8000;
const CONNECT_WITH_DB: u32 = 0x8;
const PLUGIN_AUTH: u32 = 0x80000;
const DEPRECATE_EOF: u32 = 0x0100_0000;
const SSL: u32 = 0x800;

/// One packet (payload < 16 MB).
fn pkt(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    v.push(seq);
    v.extend_from_slice(payload);
    v
}

/// Packets in sequence from `seq`.
fn pkts(seq: u8, payloads: &[Vec<u8>]) -> Vec<u8> {
    payloads
        .iter()
        .enumerate()
        .flat_map(|(i, p)| pkt(seq.wrapping_add(i as u8), p))
        .collect()
}

fn greeting(caps: u32) -> Vec<u8> {
    let mut g = vec![10];
    g.extend_from_slice(b"8.0.36\0");
    g.extend_from_slice(&7u32.to_le_bytes());
    g.extend_from_slice(b"12345678\0");
    g.extend_from_slice(&(caps as u16).to_le_bytes());
    g.push(255);
    g.extend_from_slice(&2u16.to_le_bytes());
    g.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    g.push(21);
    g.extend_from_slice(&[0; 10]);
    g.extend_from_slice(b"abcdefghijkl\0");
    g.extend_from_slice(b"caching_sha2_password\0");
    pkt(0, &g)
}

fn handshake_response(caps: u32, user: &str, db: Option<&str>) -> Vec<u8> {
    let caps = caps | if db.is_some() { CONNECT_WITH_DB } else { 0 };
    let mut r = caps.to_le_bytes().to_vec();
    r.extend_from_slice(&(1u32 << 24).to_le_bytes());
    r.push(255);
    r.extend_from_slice(&[0; 23]);
    r.extend_from_slice(user.as_bytes());
    r.push(0);
    r.push(20);
    r.extend_from_slice(&[7; 20]);
    if let Some(db) = db {
        r.extend_from_slice(db.as_bytes());
        r.push(0);
    }
    r.extend_from_slice(b"caching_sha2_password\0");
    pkt(1, &r)
}

fn ok(affected: u8) -> Vec<u8> {
    vec![0, affected, 0, 2, 0, 0, 0]
}

fn ok_more(affected: u8) -> Vec<u8> {
    vec![0, affected, 0, 0x0a, 0, 0, 0]
}

fn eof() -> Vec<u8> {
    vec![0xfe, 0, 0, 2, 0]
}

fn eof_ok() -> Vec<u8> {
    vec![0xfe, 0, 0, 2, 0, 0, 0]
}

fn err(code: u16, state: &str, message: &str) -> Vec<u8> {
    let mut v = vec![0xff];
    v.extend_from_slice(&code.to_le_bytes());
    v.push(b'#');
    v.extend_from_slice(state.as_bytes());
    v.extend_from_slice(message.as_bytes());
    v
}

fn coldef(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for s in ["def", "db", "t", "t", name, name] {
        v.push(s.len() as u8);
        v.extend_from_slice(s.as_bytes());
    }
    v.extend_from_slice(&[0x0c, 33, 0, 0xff, 0, 0, 0, 0xfd, 0, 0, 0, 0, 0]);
    v
}

fn row(values: &[&str]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| [&[v.len() as u8][..], v.as_bytes()].concat())
        .collect()
}

fn command(cmd: u8, body: &[u8]) -> Vec<u8> {
    pkt(0, &[&[cmd][..], body].concat())
}

fn login(caps: u32) -> Vec<Seg> {
    let all = PROTOCOL_41 | SECURE | PLUGIN_AUTH | caps;
    vec![
        seg(S, 10, greeting(all)),
        seg(C, 20, handshake_response(all, "app", Some("shop"))),
        seg(S, 30, pkts(2, &[vec![1, 3], ok(0)])),
    ]
}

#[test]
fn handshake_with_fast_auth() {
    let ex = run_invariant(MysqlParser::new, &login(0));
    assert_eq!(ex.len(), 1);
    let h = my(&ex[0]);
    assert_eq!(h.command, "handshake");
    assert_eq!(h.server_version.as_deref(), Some("8.0.36"));
    assert_eq!(
        (h.user.as_deref(), h.database.as_deref()),
        (Some("app"), Some("shop"))
    );
    assert_eq!(h.auth_outcome.as_deref(), Some("ok"));
    assert_eq!(h.auth_plugin.as_deref(), Some("caching_sha2_password"));
    assert_eq!(ex[0].latency_ns, Some(10));
    assert_eq!(ex[0].response_bytes, 6 + 11);
}

#[test]
fn auth_switch_then_failure() {
    let all = PROTOCOL_41 | SECURE | PLUGIN_AUTH;
    let segs = vec![
        seg(S, 1, greeting(all)),
        seg(C, 2, handshake_response(all, "bob", None)),
        seg(
            S,
            3,
            pkt(2, b"\xfemysql_native_password\0abcdefghijklmnopqrst\0"),
        ),
        seg(C, 4, pkt(3, &[9; 20])),
        seg(
            S,
            5,
            pkt(
                4,
                &err(
                    1045,
                    "28000",
                    "Access denied for user 'bob'@'localhost' (using password: YES)",
                ),
            ),
        ),
    ];
    let ex = run_invariant(MysqlParser::new, &segs);
    assert_eq!(ex.len(), 1);
    let h = my(&ex[0]);
    assert_eq!(h.auth_outcome.as_deref(), Some("failed"));
    assert_eq!(h.auth_plugin.as_deref(), Some("mysql_native_password"));
    assert_eq!(
        (h.error_code, h.sql_state.as_deref()),
        (Some(1045), Some("28000"))
    );
    assert!(ex[0].error);
    assert_eq!(ex[0].status.as_deref(), Some("1045"));
    assert_eq!(
        ex[0].request_bytes,
        handshake_response(all, "bob", None).len() as u64 + 24
    );
}

#[test]
fn ssl_request_stops_parsing() {
    let all = PROTOCOL_41 | SECURE | SSL;
    let mut ssl = all.to_le_bytes().to_vec();
    ssl.extend_from_slice(&[0, 0, 0, 1, 33]);
    ssl.extend_from_slice(&[0; 23]);
    let segs = vec![
        seg(S, 1, greeting(all)),
        seg(C, 2, pkt(1, &ssl)),
        seg(C, 3, b"\x16\x03\x01\x00\x10garbage"),
        seg(S, 4, b"\x16\x03\x03"),
    ];
    let (ex, stats) = run_cut(MysqlParser::new(), &segs, &[]);
    assert_eq!(ex.len(), 1);
    assert_eq!(
        (ex[0].kind, my(&ex[0]).command.as_str()),
        (ExchangeKind::Message, "ssl_request")
    );
    assert_eq!(stats.skipped_bytes, 0);
}

/// One TLS handshake record holding a ClientHello (type 1) or ServerHello (type 2) with
/// TLS 1.2, an empty session id, `suite` and no extensions.
fn tls_hello(kind: u8, suite: u16) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    if kind == 1 {
        body.extend_from_slice(&[0, 2]);
    }
    body.extend_from_slice(&suite.to_be_bytes());
    if kind == 1 {
        body.extend_from_slice(&[1, 0]);
    } else {
        body.push(0);
    }
    let mut hs = vec![kind, 0];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// The TLS handshake after an SSLRequest is reported like any TLS connection's (Zeek's
/// ssl.log has it for mysql/encrypted.pcap), whether it comes in the SSLRequest's segment or
/// after it.
#[test]
fn tls_after_ssl_request_is_reported() {
    let all = PROTOCOL_41 | SECURE | SSL;
    let mut ssl = all.to_le_bytes().to_vec();
    ssl.extend_from_slice(&[0, 0, 0, 1, 33]);
    ssl.extend_from_slice(&[0; 23]);
    let mut same_segment = pkt(1, &ssl);
    same_segment.extend_from_slice(&tls_hello(1, 0x0039));
    for client in [vec![same_segment], vec![pkt(1, &ssl), tls_hello(1, 0x0039)]] {
        let mut segs = vec![seg(S, 1, greeting(all))];
        segs.extend(client.into_iter().map(|c| seg(C, 2, c)));
        segs.push(seg(S, 3, tls_hello(2, 0x0039)));
        let (ex, stats) = run_cut(MysqlParser::new(), &segs, &[]);
        assert_eq!(ex.len(), 2, "{ex:?}");
        assert_eq!(my(&ex[0]).command, "ssl_request");
        let L7Detail::Tls(t) = &ex[1].detail else {
            panic!("{:?}", ex[1].detail)
        };
        assert_eq!(
            (t.version.as_deref(), t.cipher.as_deref()),
            (Some("TLSv1.2"), Some("TLS_DHE_RSA_WITH_AES_256_CBC_SHA"))
        );
        assert_eq!(stats.skipped_bytes, 0);
    }
}

#[test]
fn queries_ok_err_and_result_sets_classic_eof() {
    let mut segs = login(0);
    segs.extend([
        seg(C, 100, command(3, b"SELECT id, name FROM t")),
        seg(
            S,
            110,
            pkts(
                1,
                &[
                    vec![2],
                    coldef("id"),
                    coldef("name"),
                    eof(),
                    row(&["1", "a"]),
                    row(&["2", "b"]),
                    row(&["3", "c"]),
                    eof(),
                ],
            ),
        ),
        seg(C, 200, command(3, b"UPDATE t SET x = 1")),
        seg(S, 205, pkt(1, &ok(4))),
        seg(C, 300, command(3, b"SELECT * FROM nope")),
        seg(
            S,
            301,
            pkt(1, &err(1146, "42S02", "Table 'shop.nope' doesn't exist")),
        ),
        seg(C, 400, command(2, b"other")),
        seg(S, 401, pkt(1, &ok(0))),
        seg(C, 500, command(0x0e, b"")),
        seg(S, 501, pkt(1, &ok(0))),
        seg(C, 600, command(1, b"")),
    ]);
    let ex = run_invariant(MysqlParser::new, &segs);
    let names: Vec<_> = ex.iter().map(|e| my(e).command.as_str()).collect();
    assert_eq!(
        names,
        [
            "handshake",
            "COM_QUERY",
            "COM_QUERY",
            "COM_QUERY",
            "COM_INIT_DB",
            "COM_PING",
            "COM_QUIT"
        ]
    );
    let sel = my(&ex[1]);
    assert_eq!(
        (sel.columns, sel.rows, sel.affected_rows),
        (Some(2), Some(3), None)
    );
    assert_eq!(ex[1].latency_ns, Some(10));
    assert_eq!(my(&ex[2]).affected_rows, Some(4));
    assert!(ex[3].error);
    assert_eq!(
        my(&ex[3]).error_message.as_deref(),
        Some("Table 'shop.nope' doesn't exist")
    );
    assert_eq!(my(&ex[4]).database.as_deref(), Some("other"));
    assert_eq!(ex[6].kind, ExchangeKind::Message);
}

#[test]
fn deprecate_eof_and_multiple_results() {
    let mut segs = login(DEPRECATE_EOF);
    segs.extend([
        seg(C, 100, command(3, b"CALL p()")),
        seg(
            S,
            110,
            pkts(
                1,
                &[
                    vec![1],
                    coldef("a"),
                    row(&["x"]),
                    row(&["y"]),
                    vec![0xfe, 0, 0, 0x0a, 0, 0, 0],
                    vec![1],
                    coldef("b"),
                    row(&["z"]),
                    eof_ok(),
                ],
            ),
        ),
        seg(C, 200, command(3, b"SELECT 1; UPDATE t SET a = 2")),
        seg(
            S,
            210,
            pkts(
                1,
                &[
                    vec![1],
                    coldef("1"),
                    row(&["1"]),
                    vec![0xfe, 0, 0, 0x0a, 0, 0, 0],
                    ok(5),
                ],
            ),
        ),
        seg(C, 300, command(3, b"INSERT 1; INSERT 2")),
        seg(S, 310, pkts(1, &[ok_more(1), ok(1)])),
    ]);
    let ex = run_invariant(MysqlParser::new, &segs);
    assert_eq!(ex.len(), 4);
    assert_eq!((my(&ex[1]).rows, my(&ex[1]).columns), (Some(3), Some(1)));
    assert_eq!(my(&ex[2]).rows, Some(1));
    assert_eq!(my(&ex[3]).affected_rows, Some(2));
}

#[test]
fn prepared_statements() {
    let mut segs = login(0);
    let mut prep_ok = vec![0];
    prep_ok.extend_from_slice(&42u32.to_le_bytes());
    prep_ok.extend_from_slice(&1u16.to_le_bytes()); // columns
    prep_ok.extend_from_slice(&1u16.to_le_bytes()); // params
    prep_ok.extend_from_slice(&[0, 0, 0]);
    let mut exec = 42u32.to_le_bytes().to_vec();
    exec.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, 8, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
    segs.extend([
        seg(C, 100, command(0x16, b"SELECT name FROM t WHERE id = ?")),
        seg(
            S,
            101,
            pkts(1, &[prep_ok, coldef("?"), eof(), coldef("name"), eof()]),
        ),
        seg(C, 200, command(0x17, &exec)),
        seg(
            S,
            201,
            pkts(
                1,
                &[
                    vec![1],
                    coldef("name"),
                    eof(),
                    vec![0, 0, 3, b'b', b'o', b'b'],
                    eof(),
                ],
            ),
        ),
        seg(C, 300, command(0x19, &42u32.to_le_bytes())),
        seg(C, 400, command(0x0e, b"")),
        seg(S, 401, pkt(1, &ok(0))),
    ]);
    let ex = run_invariant(MysqlParser::new, &segs);
    let names: Vec<_> = ex.iter().map(|e| my(e).command.as_str()).collect();
    assert_eq!(
        names,
        [
            "handshake",
            "COM_STMT_PREPARE",
            "COM_STMT_EXECUTE",
            "COM_STMT_CLOSE",
            "COM_PING"
        ]
    );
    assert_eq!(my(&ex[1]).statement_id, Some(42));
    assert_eq!(
        my(&ex[1]).statement.as_deref(),
        Some("SELECT name FROM t WHERE id = ?")
    );
    assert_eq!(
        my(&ex[2]).statement.as_deref(),
        Some("SELECT name FROM t WHERE id = ?")
    );
    assert_eq!(
        (my(&ex[2]).statement_id, my(&ex[2]).rows),
        (Some(42), Some(1))
    );
    assert_eq!(
        (ex[3].kind, my(&ex[3]).statement_id),
        (ExchangeKind::Message, Some(42))
    );
    assert_eq!(ex[4].kind, ExchangeKind::RequestResponse);
}

#[test]
fn local_infile() {
    let mut segs = login(0);
    segs.extend([
        seg(
            C,
            100,
            command(3, b"LOAD DATA LOCAL INFILE '/tmp/x' INTO TABLE t"),
        ),
        seg(S, 101, pkt(1, b"\xfb/tmp/x")),
        seg(C, 102, pkts(2, &[b"1\n2\n".to_vec(), vec![]])),
        seg(S, 103, pkt(4, &ok(2))),
    ]);
    let ex = run_invariant(MysqlParser::new, &segs);
    assert_eq!(ex.len(), 2);
    assert_eq!(my(&ex[1]).affected_rows, Some(2));
    assert_eq!(ex[1].request_bytes, (4 + 45 + 8 + 4) as u64);
}

#[test]
fn sixteen_megabyte_messages() {
    // A 17 MB statement (two packets) and a result row spanning two packets.
    let text = vec![b'x'; (1 << 24) + 1000];
    let mut payload = vec![3u8];
    payload.extend_from_slice(&text);
    let mut q = Vec::new();
    let (first, rest) = payload.split_at(0xff_ffff);
    q.extend_from_slice(&[0xff, 0xff, 0xff, 0]);
    q.extend_from_slice(first);
    q.extend(pkt(1, rest));
    let mut big_row = vec![0xfe];
    big_row.extend_from_slice(&((1u64 << 24) + 10).to_le_bytes());
    big_row.extend(std::iter::repeat_n(b'r', (1 << 24) + 10));
    let mut resp = pkts(1, &[vec![1], coldef("c"), eof()]);
    let (f, r) = big_row.split_at(0xff_ffff);
    resp.extend_from_slice(&[0xff, 0xff, 0xff, 4]);
    resp.extend_from_slice(f);
    resp.extend(pkt(5, r));
    resp.extend(pkt(6, &row(&["small"])));
    resp.extend(pkt(7, &eof()));
    let mut segs = login(0);
    segs.extend([seg(C, 100, &q), seg(S, 200, &resp)]);
    let cfg = MysqlConfig {
        max_message: 1024,
        max_text: 100,
        ..MysqlConfig::default()
    };
    let (ex, stats) = run_cut(MysqlParser::with_config(cfg), &segs, &[65536, 1460]);
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[1].request_bytes, q.len() as u64);
    assert_eq!(ex[1].response_bytes, resp.len() as u64);
    assert_eq!(my(&ex[1]).statement.as_ref().map(String::len), Some(100));
    assert_eq!(my(&ex[1]).rows, Some(2));
    assert_eq!((stats.skipped_bytes, stats.overflow_bytes), (0, 0));
    let (whole, _) = run_cut(MysqlParser::with_config(cfg), &segs, &[]);
    assert_eq!(whole, ex);
}

#[test]
fn mid_stream_pickup() {
    let segs = vec![
        seg(
            S,
            1,
            pkts(1, &[vec![1], coldef("a"), eof(), row(&["1"]), eof()]),
        ),
        seg(C, 2, command(3, b"SELECT 2")),
        seg(
            S,
            3,
            pkts(1, &[vec![1], coldef("a"), row(&["2"]), eof_ok()]),
        ),
        seg(C, 4, command(3, b"SELECT 3")),
    ];
    let ex = run_invariant(MysqlParser::new, &segs);
    let kinds: Vec<_> = ex.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            ExchangeKind::ResponseOnly,
            ExchangeKind::RequestResponse,
            ExchangeKind::RequestOnly
        ]
    );
    assert_eq!(my(&ex[0]).rows, Some(1));
    assert_eq!(
        my(&ex[1]).rows,
        Some(1),
        "no intermediate EOF: learned from the shape"
    );
    assert_eq!(my(&ex[2]).statement.as_deref(), Some("SELECT 3"));
}

#[test]
fn gaps_resynchronise() {
    let mut p = MysqlParser::new();
    let mut out = Vec::new();
    let q = command(3, b"SELECT something long enough");
    p.feed(C, 1, &q[..9], &mut out);
    p.gap(C, 10);
    p.feed(C, 2, &q[19..], &mut out);
    p.feed(C, 3, &command(3, b"SELECT 1"), &mut out);
    p.feed(S, 4, &pkts(1, &[vec![1], coldef("1")]), &mut out);
    p.gap(S, 50);
    p.feed(S, 5, &pkts(5, &[row(&["x"]), eof()]), &mut out);
    p.feed(C, 6, &command(0x0e, b""), &mut out);
    p.feed(S, 7, &pkt(1, &ok(0)), &mut out);
    p.finish(8, &mut out);
    let names: Vec<_> = out
        .iter()
        .map(|e| (my(e).command.as_str(), e.kind))
        .collect();
    assert_eq!(
        names,
        [
            ("COM_QUERY", ExchangeKind::RequestResponse),
            ("COM_PING", ExchangeKind::RequestResponse)
        ]
    );
    assert_eq!(my(&out[0]).statement.as_deref(), Some("SELECT 1"));
    assert_eq!(p.stats().gap_bytes, 60);
}

#[test]
fn detection() {
    assert_eq!(detect(S, &greeting(PROTOCOL_41)), Detection::Match);
    assert_eq!(detect(S, &greeting(PROTOCOL_41)[..6]), Detection::NeedMore);
    assert_eq!(detect(C, &command(3, b"SELECT 1")), Detection::Match);
    assert_eq!(
        detect(C, &handshake_response(PROTOCOL_41 | SECURE, "u", None)),
        Detection::Match
    );
    assert_eq!(
        detect(C, b"\x16\x03\x01\x00\xa5\x01\x00"),
        Detection::NoMatch
    );
    assert_eq!(detect(S, b"SSH-2.0-x\r\n"), Detection::NoMatch);
}

#[test]
fn loopback_capture_of_mariadb_client() {
    let (all, stats) = replay_capture(&data("mariadb.pcap"), &[L7Protocol::Mysql]);
    assert_eq!(all.len(), 3);
    assert_eq!((stats.skipped_bytes, stats.overflow_bytes), (0, 0));
    let s = &all[0];
    assert_eq!(
        my(&s[0]).server_version.as_deref(),
        Some("5.5.5-10.11.19-MariaDB-0+deb12u1")
    );
    assert_eq!(
        (my(&s[0]).user.as_deref(), my(&s[0]).database.as_deref()),
        (Some("fathom"), Some("shop"))
    );
    // (statement or command, affected rows, result rows, error code)
    type Row<'a> = (&'a str, Option<u64>, Option<u64>, Option<u16>);
    let queries: Vec<Row> = s[1..]
        .iter()
        .map(|e| {
            (
                my(e).statement.as_deref().unwrap_or(my(e).command.as_str()),
                my(e).affected_rows,
                my(e).rows,
                my(e).error_code,
            )
        })
        .collect();
    // tshark: affected rows 0,0,3,-,1,err 1146,-,-,-,0,1,0,0,-,0 ; result sets of 3,1,1,1,1 rows.
    assert_eq!(
        queries,
        [
            ("DROP TABLE IF EXISTS items", Some(0), None, None),
            ("CREATE TABLE items (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(32), price DECIMAL(8,2))", Some(0), None, None),
            ("INSERT INTO items (name, price) VALUES ('apple', 1.20), ('pear', 0.80), ('plum', NULL)", Some(3), None, None),
            ("SELECT * FROM items ORDER BY id", None, Some(3), None),
            ("UPDATE items SET price = 1.00 WHERE name = 'pear'", Some(1), None, None),
            ("SELECT * FROM nosuch", None, None, Some(1146)),
            ("SELECT 1", None, Some(1), None),
            ("SELECT 2, 3", None, Some(1), None),
            ("SELECT DATABASE()", None, Some(1), None),
            ("COM_INIT_DB", Some(0), None, None),
            ("DELETE FROM shop.items WHERE id = 3", Some(1), None, None),
            ("PREPARE s FROM 'SELECT name FROM shop.items WHERE id = ?'", Some(0), None, None),
            ("SET @a = 1", Some(0), None, None),
            ("EXECUTE s USING @a", None, Some(1), None),
            ("DEALLOCATE PREPARE s", Some(0), None, None),
            ("COM_QUIT", None, None, None),
        ]
    );
    assert_eq!(my(&all[1][0]).auth_outcome.as_deref(), Some("failed"));
    assert_eq!(my(&all[1][0]).error_code, Some(1045));
    let admin: Vec<_> = all[2].iter().map(|e| my(e).command.as_str()).collect();
    assert_eq!(
        admin,
        ["handshake", "COM_PING", "COM_STATISTICS", "COM_QUIT"]
    );
}

fn conversation() -> Vec<Seg> {
    let mut s = login(0);
    s.extend([
        seg(C, 100, command(3, b"SELECT a")),
        seg(
            S,
            101,
            pkts(1, &[vec![1], coldef("a"), eof(), row(&["1"]), eof()]),
        ),
        seg(C, 102, command(3, b"BAD")),
        seg(S, 103, pkt(1, &err(1064, "42000", "syntax"))),
        seg(C, 104, command(1, b"")),
    ]);
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn chunking_never_changes_exchanges(cuts in prop::collection::vec(1usize..40, 1..8)) {
        let segs = conversation();
        let whole = run(MysqlParser::new(), &segs);
        prop_assert_eq!(run_cut(MysqlParser::new(), &segs, &cuts).0, whole);
    }

    #[test]
    fn garbage_never_panics(chunks in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..300)), 0..12)) {
        let mut p = MysqlParser::with_config(MysqlConfig { max_message: 128, ..MysqlConfig::default() });
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
    fn shuffled_packets_never_panic(picks in prop::collection::vec((any::<bool>(), 0usize..10, 0u8..4), 0..30)) {
        let client = [command(3, b"q"), command(0x16, b"p"), command(0x17, &[1, 0, 0, 0]), command(0x11, b"u\0"), command(1, b""), handshake_response(PROTOCOL_41 | SECURE, "u", Some("d")), pkt(3, b"auth"), pkt(2, b""), command(4, b"t\0"), command(0x12, b"")];
        let server = [greeting(PROTOCOL_41), pkt(1, &ok(1)), pkt(1, &err(1, "HY000", "e")), pkt(1, &eof()), pkt(2, &coldef("c")), pkt(1, &[2]), pkt(3, &row(&["r"])), pkt(1, b"\xfb/f"), pkt(2, b"\xfeplugin\0"), pkt(1, &[0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0])];
        let segs: Vec<Seg> = picks.iter().enumerate().map(|(i, (c, k, _))| if *c { seg(C, i as u64, &client[*k]) } else { seg(S, i as u64, &server[*k]) }).collect();
        let whole = run(MysqlParser::new(), &segs);
        prop_assert_eq!(run_bytewise(MysqlParser::new(), &segs), whole);
    }
}
