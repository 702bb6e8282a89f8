//! HTTP/2 and gRPC parser: hand-built frame sequences (RFC 9113 layouts, header blocks from an
//! independent HPACK encoder), chunking invariance, mid-stream pickup, gaps, limits, garbage,
//! and a loopback capture of real implementations (hyperium `h2` client and server, curl with
//! nghttp2) checked against tshark's http2 dissector.

mod proto_support;

use fathom_l7::http2::{detect, Http2Config, Http2Parser};
use fathom_l7::parser::{Detection, ProtocolParser};
use fathom_model::l7::grpc::GrpcCall;
use fathom_model::l7::http::HttpExchange;
use fathom_model::l7::{ExchangeKind, L7Detail, L7Exchange, L7Protocol};
use proptest::prelude::*;
use proto_support::*;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn http(e: &L7Exchange) -> &HttpExchange {
    match &e.detail {
        L7Detail::Http2(h) => h,
        other => panic!("not http2: {other:?}"),
    }
}

fn grpc(e: &L7Exchange) -> &GrpcCall {
    match &e.detail {
        L7Detail::Grpc(g) => g,
        other => panic!("not grpc: {other:?}"),
    }
}

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    v.push(ty);
    v.push(flags);
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let p: Vec<u8> = pairs
        .iter()
        .flat_map(|(id, v)| [id.to_be_bytes().to_vec(), v.to_be_bytes().to_vec()].concat())
        .collect();
    frame(4, 0, 0, &p)
}

/// One HPACK encoder per direction, as a real peer has.
struct Enc(loona_hpack::Encoder<'static>);

impl Enc {
    fn new() -> Self {
        Enc(loona_hpack::Encoder::new())
    }

    fn block(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        self.0
            .encode(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }
}

const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;
const PADDED: u8 = 8;

fn get(enc: &mut Enc, stream: u32, path: &str) -> Vec<u8> {
    // A custom header name: this encoder only indexes names missing from the tables, so it
    // lands in the dynamic table and later requests refer to it by index.
    let b = enc.block(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":path", path),
        (":authority", "example.com"),
        ("user-agent", "test/1"),
        ("x-trace", "abc"),
    ]);
    frame(1, END_STREAM | END_HEADERS, stream, &b)
}

fn ok(enc: &mut Enc, stream: u32, status: &str, body: &[u8]) -> Vec<u8> {
    let b = enc.block(&[
        (":status", status),
        ("content-type", "text/html"),
        ("content-length", &body.len().to_string()),
    ]);
    [
        frame(1, END_HEADERS, stream, &b),
        frame(0, END_STREAM, stream, body),
    ]
    .concat()
}

fn connection() -> (Vec<Seg>, Enc, Enc) {
    let segs = vec![
        seg(
            C,
            1,
            [PREFACE.to_vec(), settings(&[(2, 0), (4, 65535)])].concat(),
        ),
        seg(S, 2, [settings(&[(3, 100)]), frame(4, 1, 0, b"")].concat()),
        seg(C, 3, frame(4, 1, 0, b"")),
    ];
    (segs, Enc::new(), Enc::new())
}

#[test]
fn requests_on_streams_pair_with_latency_sizes_and_dynamic_table() {
    let (mut segs, mut ce, mut se) = connection();
    let r1 = get(&mut ce, 1, "/");
    let r3 = get(&mut ce, 3, "/about"); // reuses dynamic-table entries from the first block
    let a1 = ok(&mut se, 1, "200", b"<html>");
    let a3 = ok(&mut se, 3, "404", b"nope");
    segs.extend([
        seg(C, 10, &r1),
        seg(C, 11, &r3),
        seg(S, 20, &a3),
        seg(S, 25, &a1),
    ]);
    let ex = run_invariant(Http2Parser::new, &segs);
    assert_eq!(ex.len(), 2);
    let (e3, e1) = (&ex[0], &ex[1]);
    assert_eq!(http(e3).stream_id, Some(3));
    assert_eq!(http(e3).path.as_deref(), Some("/about"));
    assert_eq!(http(e3).host.as_deref(), Some("example.com"));
    assert_eq!(http(e3).user_agent.as_deref(), Some("test/1"));
    assert_eq!(http(e3).status, Some(404));
    assert!(e3.error);
    assert_eq!(e3.latency_ns, Some(9));
    assert_eq!(e1.latency_ns, Some(15));
    assert_eq!(http(e1).method.as_deref(), Some("GET"));
    assert_eq!(http(e1).version.as_deref(), Some("HTTP/2"));
    assert_eq!(http(e1).response_content_type.as_deref(), Some("text/html"));
    assert_eq!(http(e1).response_content_length, Some(6));
    assert_eq!(e1.status.as_deref(), Some("200"));
    assert_eq!(e1.request_bytes, r1.len() as u64);
    assert_eq!(e1.response_bytes, a1.len() as u64);
    assert_eq!(e1.kind, ExchangeKind::RequestResponse);
}

#[test]
fn continuation_padding_priority_and_header_table_size() {
    let (mut segs, mut ce, mut se) = connection();
    // The server allows a bigger table; the client encoder announces it with a size update.
    segs.push(seg(S, 4, settings(&[(1, 8192)])));
    ce.0.set_max_table_size(8192);
    let long = "x".repeat(3000);
    let block = ce.block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/upload"),
        (":authority", "h"),
        ("x-long", &long),
        ("content-type", "application/octet-stream"),
    ]);
    let (a, b) = block.split_at(block.len() / 2);
    // HEADERS with PADDED and PRIORITY, then a CONTINUATION.
    let mut first = vec![3];
    first.extend_from_slice(&[0, 0, 0, 0, 16]);
    first.extend_from_slice(a);
    first.extend_from_slice(&[0, 0, 0]);
    let headers = frame(1, PADDED | 0x20, 5, &first);
    let cont = frame(9, END_HEADERS, 5, b);
    let mut data = vec![2];
    data.extend_from_slice(b"body");
    data.extend_from_slice(&[0, 0]);
    let body = frame(0, PADDED | END_STREAM, 5, &data);
    segs.extend([
        seg(C, 10, [headers, cont, body].concat()),
        seg(S, 20, ok(&mut se, 5, "201", b"")),
    ]);
    let ex = run_invariant(Http2Parser::new, &segs);
    assert_eq!(ex.len(), 1);
    assert_eq!(http(&ex[0]).method.as_deref(), Some("POST"));
    assert_eq!(http(&ex[0]).path.as_deref(), Some("/upload"));
    assert_eq!(
        http(&ex[0]).request_content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(http(&ex[0]).status, Some(201));
}

fn grpc_request(enc: &mut Enc, stream: u32, method: &str, messages: &[&[u8]]) -> Vec<u8> {
    let b = enc.block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", method),
        (":authority", "svc:50051"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]);
    let mut body = Vec::new();
    for m in messages {
        body.push(0);
        body.extend_from_slice(&(m.len() as u32).to_be_bytes());
        body.extend_from_slice(m);
    }
    // Split the messages over two DATA frames at an awkward place.
    let cut = body.len().min(3);
    [
        frame(1, END_HEADERS, stream, &b),
        frame(0, 0, stream, &body[..cut]),
        frame(0, END_STREAM, stream, &body[cut..]),
    ]
    .concat()
}

#[test]
fn grpc_calls_with_trailers_and_trailers_only() {
    let (mut segs, mut ce, mut se) = connection();
    let head = se.block(&[
        (":status", "200"),
        ("content-type", "application/grpc+proto"),
    ]);
    let trailers = se.block(&[("grpc-status", "0")]);
    let resp1 = [
        frame(1, END_HEADERS, 1, &head),
        frame(0, 0, 1, &[0, 0, 0, 0, 2, 7, 7]),
        frame(1, END_HEADERS | END_STREAM, 1, &trailers),
    ]
    .concat();
    let fail = se.block(&[
        (":status", "200"),
        ("content-type", "application/grpc"),
        ("grpc-status", "5"),
        ("grpc-message", "user%20%22bob%22%20not%20found"),
    ]);
    segs.extend([
        seg(
            C,
            10,
            grpc_request(&mut ce, 1, "/users.v1.Users/Get", &[b"abc", b"defgh"]),
        ),
        seg(S, 12, resp1),
        seg(
            C,
            20,
            grpc_request(&mut ce, 3, "/users.v1.Users/Delete", &[b""]),
        ),
        seg(S, 21, frame(1, END_HEADERS | END_STREAM, 3, &fail)),
    ]);
    let ex = run_invariant(Http2Parser::new, &segs);
    assert_eq!(ex.len(), 2);
    let g = grpc(&ex[0]);
    assert_eq!(
        (g.service.as_deref(), g.method.as_deref()),
        (Some("users.v1.Users"), Some("Get"))
    );
    assert_eq!(g.authority.as_deref(), Some("svc:50051"));
    assert_eq!((g.request_messages, g.request_message_bytes), (2, 8));
    assert_eq!((g.response_messages, g.response_message_bytes), (1, 2));
    assert_eq!((g.http_status, g.grpc_status), (Some(200), Some(0)));
    assert_eq!(ex[0].status.as_deref(), Some("OK"));
    assert!(!ex[0].error);
    let f = grpc(&ex[1]);
    assert_eq!(f.grpc_status, Some(5));
    assert_eq!(f.grpc_message.as_deref(), Some("user \"bob\" not found"));
    assert_eq!(ex[1].status.as_deref(), Some("NOT_FOUND"));
    assert!(ex[1].error);
    assert_eq!(f.response_messages, 0);
}

#[test]
fn resets_goaway_and_informational_responses() {
    let (mut segs, mut ce, mut se) = connection();
    let cont = se.block(&[(":status", "100")]);
    segs.extend([
        seg(C, 10, get(&mut ce, 1, "/a")),
        seg(C, 11, get(&mut ce, 3, "/b")),
        seg(C, 12, get(&mut ce, 5, "/c")),
        seg(C, 13, get(&mut ce, 7, "/d")),
        // 100 Continue then the final answer.
        seg(
            S,
            20,
            [
                frame(1, END_HEADERS, 1, &cont),
                ok(&mut se, 1, "200", b"ok"),
            ]
            .concat(),
        ),
        // The server refuses stream 3, the client cancels stream 5.
        seg(S, 21, frame(3, 0, 3, &7u32.to_be_bytes())),
        seg(C, 22, frame(3, 0, 5, &8u32.to_be_bytes())),
        // Late WINDOW_UPDATE for a finished stream: ignored.
        seg(C, 23, frame(8, 0, 1, &100u32.to_be_bytes())),
        // GOAWAY: streams above 5 were not processed.
        seg(S, 30, frame(7, 0, 0, &[0, 0, 0, 5, 0, 0, 0, 0])),
    ]);
    let ex = run_invariant(Http2Parser::new, &segs);
    let summary: Vec<_> = ex
        .iter()
        .map(|e| (http(e).stream_id, e.status.clone(), e.error, e.kind))
        .collect();
    use ExchangeKind::*;
    assert_eq!(
        summary,
        [
            (Some(1), Some("200".into()), false, RequestResponse),
            (
                Some(3),
                Some("REFUSED_STREAM".into()),
                true,
                RequestResponse
            ),
            (Some(5), Some("CANCEL".into()), false, RequestOnly),
            (Some(0), Some("GOAWAY".into()), false, Message),
            (Some(7), Some("REFUSED_STREAM".into()), true, RequestOnly),
        ]
    );
    assert_eq!(http(&ex[1]).reason.as_deref(), Some("REFUSED_STREAM"));
}

#[test]
fn server_push_is_reported_as_its_own_exchange() {
    let (mut segs, mut ce, mut se) = connection();
    let promise = se.block(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/style.css"),
        (":authority", "example.com"),
    ]);
    let mut pp = 2u32.to_be_bytes().to_vec();
    pp.extend_from_slice(&promise);
    segs.extend([
        seg(C, 10, get(&mut ce, 1, "/")),
        seg(S, 20, frame(5, END_HEADERS, 1, &pp)),
        seg(S, 21, ok(&mut se, 1, "200", b"<html>")),
        seg(S, 22, ok(&mut se, 2, "200", b"body{}")),
    ]);
    let ex = run_invariant(Http2Parser::new, &segs);
    assert_eq!(ex.len(), 2);
    assert_eq!(http(&ex[1]).stream_id, Some(2));
    assert_eq!(http(&ex[1]).path.as_deref(), Some("/style.css"));
    assert_eq!(ex[1].kind, ExchangeKind::RequestResponse);
}

#[test]
fn h2c_upgrade_reports_stream_one() {
    let mut se = Enc::new();
    let mut ce = Enc::new();
    let segs = vec![
        seg(
            S,
            5,
            [settings(&[]), ok(&mut se, 1, "200", b"upgraded")].concat(),
        ),
        seg(
            C,
            6,
            [PREFACE.to_vec(), settings(&[]), get(&mut ce, 3, "/next")].concat(),
        ),
        seg(S, 7, ok(&mut se, 3, "200", b"x")),
    ];
    let ex = run_invariant(Http2Parser::after_upgrade, &segs);
    assert_eq!(ex.len(), 2);
    assert_eq!(
        (http(&ex[0]).stream_id, ex[0].kind),
        (Some(1), ExchangeKind::ResponseOnly)
    );
    assert_eq!(http(&ex[0]).status, Some(200));
    assert_eq!(http(&ex[1]).path.as_deref(), Some("/next"));
    // With the HTTP/1.1 request handed over, stream 1 is a whole exchange.
    let req = HttpExchange {
        method: Some("GET".into()),
        path: Some("/".into()),
        ..HttpExchange::default()
    };
    let ex = run(
        Http2Parser::after_upgrade().with_upgrade_request(1, req),
        &segs,
    );
    assert_eq!(
        (ex[0].kind, ex[0].latency_ns),
        (ExchangeKind::RequestResponse, Some(4))
    );
    assert_eq!(http(&ex[0]).path.as_deref(), Some("/"));
}

#[test]
fn mid_stream_pickup_without_preface() {
    let (mut segs, mut ce, mut se) = connection();
    segs.extend([
        seg(C, 10, get(&mut ce, 1, "/warm")),
        seg(S, 11, ok(&mut se, 1, "200", b"a")),
    ]);
    // The dynamic table now holds entries we will not see; start mid-frame.
    let r3 = get(&mut ce, 3, "/later");
    let a3 = ok(&mut se, 3, "200", b"bb");
    let r5 = get(&mut ce, 5, "/fresh");
    let a5 = ok(&mut se, 5, "204", b"");
    let late_client = [&[0xde, 0xad][..], &r3, &r5].concat();
    let late_server = [&b"partial-frame"[..], &a3, &a5].concat();
    let pickup = vec![seg(C, 20, &late_client), seg(S, 21, &late_server)];
    let mut p = Http2Parser::new();
    let (ex, stats) = {
        let mut out = Vec::new();
        for (d, ts, b) in &pickup {
            p.feed(*d, *ts, b, &mut out);
        }
        p.finish(30, &mut out);
        (out, p.stats())
    };
    // Both streams are reported; fields that referred to unknown table entries are missing.
    let ids: Vec<_> = ex.iter().map(|e| http(e).stream_id).collect();
    assert_eq!(ids, [Some(3), Some(5)]);
    assert!(ex.iter().all(|e| e.kind == ExchangeKind::RequestResponse));
    assert_eq!(
        http(&ex[0]).method.as_deref(),
        Some("GET"),
        "static-table fields decode"
    );
    assert_eq!(ex[0].latency_ns, Some(1));
    assert!(p.h2_stats().undecodable_fields > 0);
    assert!(stats.skipped_bytes >= 2);
    // The same pickup is chunking-invariant.
    assert_eq!(run_bytewise(Http2Parser::new(), &pickup), ex);
    // Sanity: seen from the start, the same streams decode whole.
    let mut full = segs.clone();
    full.extend([seg(C, 20, [r3, r5].concat()), seg(S, 21, [a3, a5].concat())]);
    let all = run(Http2Parser::new(), &full);
    assert_eq!(all.len(), 3);
    assert_eq!(http(&all[1]).path.as_deref(), Some("/later"));
}

#[test]
fn gap_loses_hpack_state_but_not_streams() {
    let (segs, mut ce, mut se) = connection();
    let mut p = Http2Parser::new();
    let mut out = Vec::new();
    for (d, ts, b) in &segs {
        p.feed(*d, *ts, b, &mut out);
    }
    let r1 = get(&mut ce, 1, "/one");
    p.feed(C, 10, &r1[..12], &mut out);
    p.gap(C, (r1.len() - 12) as u64);
    p.feed(C, 11, &get(&mut ce, 3, "/two"), &mut out);
    p.feed(C, 12, &get(&mut ce, 5, "/three"), &mut out);
    p.feed(S, 13, &ok(&mut se, 3, "200", b""), &mut out);
    p.finish(14, &mut out);
    // Stream 1's HEADERS was cut by the gap: it never existed for us.
    let ids: Vec<_> = out.iter().map(|e| (http(e).stream_id, e.kind)).collect();
    assert_eq!(
        ids,
        [
            (Some(3), ExchangeKind::RequestResponse),
            (Some(5), ExchangeKind::RequestOnly)
        ]
    );
    assert_eq!(http(&out[0]).path.as_deref(), Some("/two"));
    assert!(p.stats().gap_bytes > 0);
}

#[test]
fn limits_bound_streams_and_header_blocks() {
    let cfg = Http2Config {
        max_streams: 4,
        max_header_block: 512,
        max_frame: 1024,
        ..Http2Config::default()
    };
    let (mut segs, mut ce, _) = connection();
    for i in 0..10u32 {
        segs.push(seg(C, 10 + i as u64, get(&mut ce, 2 * i + 1, "/s")));
    }
    // A header block far over the limits.
    let huge = ce.block(&[
        (":method", "GET"),
        (":path", "/h"),
        ("x-big", &"y".repeat(5000)),
    ]);
    segs.push(seg(C, 30, frame(1, END_HEADERS | END_STREAM, 41, &huge)));
    let (ex, stats) = run_cut(Http2Parser::with_config(cfg), &segs, &[]);
    assert_eq!(ex.len(), 11);
    assert!(stats.overflow_bytes > 0);
    assert_eq!(run_cut(Http2Parser::with_config(cfg), &segs, &[1]).0, ex);
}

#[test]
fn detection() {
    assert_eq!(detect(C, PREFACE), Detection::Match);
    assert_eq!(detect(C, b"PRI * HTTP/2"), Detection::NeedMore);
    assert_eq!(detect(C, b"GET / HTTP/1.1\r\n"), Detection::NoMatch);
    assert_eq!(
        detect(S, &settings(&[(3, 100), (4, 65535)])),
        Detection::Match
    );
    assert_eq!(detect(S, &settings(&[(3, 100)])[..7]), Detection::NeedMore);
    assert_eq!(
        detect(S, b"\x16\x03\x03\x00\x5a\x02\x00\x00"),
        Detection::NoMatch
    );
}

/// hyperium h2 client and server (and curl/nghttp2 clients) on loopback port 18080, replayed
/// through the whole engine (prior-knowledge h2c recognised from the preface). tshark lists, for the
/// h2 client's connection, streams 1-19: GET /hello 200, /hello?again=1 200, /missing 404,
/// POST /submit 200, /big 200 (100000 bytes, many DATA frames), three gRPC calls (status 0,
/// 5 with a percent-encoded message, 12 trailers-only), /reset refused by RST_STREAM(7), and a
/// client RST_STREAM(8) on /slow.
#[test]
fn loopback_capture_of_h2_and_curl() {
    let (all, stats) = replay_capture(&data("h2c.pcap"), &[L7Protocol::Http2, L7Protocol::Grpc]);
    assert_eq!(all.len(), 3);
    assert_eq!((stats.skipped_bytes, stats.overflow_bytes), (0, 0));
    let h2: Vec<_> = all[0]
        .iter()
        .map(|e| match &e.detail {
            L7Detail::Http2(h) => (
                h.stream_id.unwrap_or(0),
                h.path.clone().unwrap_or_default(),
                e.status.clone().unwrap_or_default(),
            ),
            L7Detail::Grpc(g) => (
                g.stream_id.unwrap_or(0),
                g.method.clone().unwrap_or_default(),
                e.status.clone().unwrap_or_default(),
            ),
            _ => (0, String::new(), String::new()),
        })
        .collect();
    let expected: Vec<(u32, String, String)> = [
        (1, "/hello", "200"),
        (3, "/hello?again=1", "200"),
        (5, "/missing", "404"),
        (7, "/submit", "200"),
        (9, "/big", "200"),
        (11, "SayHello", "OK"),
        (13, "Fail", "NOT_FOUND"),
        (15, "Missing", "UNIMPLEMENTED"),
        (17, "/reset", "REFUSED_STREAM"),
        (19, "/slow", "CANCEL"),
    ]
    .iter()
    .map(|(a, b, c)| (*a, b.to_string(), c.to_string()))
    .collect();
    assert_eq!(h2, expected);
    let big = &all[0][4];
    assert_eq!(http(big).response_content_length, Some(100_000));
    assert!(big.response_bytes > 100_000);
    let say = grpc(&all[0][5]);
    assert_eq!(
        (
            say.request_messages,
            say.request_message_bytes,
            say.response_messages,
            say.response_message_bytes
        ),
        (2, 6, 2, 8)
    );
    let fail = grpc(&all[0][6]);
    assert_eq!(fail.grpc_message.as_deref(), Some("user not found: \u{e9}"));
    // curl (nghttp2's encoder).
    assert_eq!(
        http(&all[1][0]).user_agent.as_deref(),
        Some("fathom-test/1.0")
    );
    assert_eq!(
        grpc(&all[2][0]).service.as_deref(),
        Some("helloworld.Greeter")
    );
    assert_eq!(grpc(&all[2][0]).request_messages, 1);
}

fn conversation() -> Vec<Seg> {
    let (mut segs, mut ce, mut se) = connection();
    segs.extend([
        seg(
            C,
            10,
            [
                get(&mut ce, 1, "/x"),
                grpc_request(&mut ce, 3, "/a.B/C", &[b"hello", b""]),
            ]
            .concat(),
        ),
        seg(
            S,
            11,
            [
                ok(&mut se, 1, "200", b"body"),
                frame(3, 0, 3, &2u32.to_be_bytes()),
            ]
            .concat(),
        ),
        seg(C, 12, frame(6, 0, 0, b"12345678")),
        seg(S, 13, frame(7, 0, 0, &[0, 0, 0, 3, 0, 0, 0, 0])),
    ]);
    segs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn chunking_never_changes_exchanges(cuts in prop::collection::vec(1usize..64, 1..8)) {
        let segs = conversation();
        let whole = run(Http2Parser::new(), &segs);
        prop_assert_eq!(run_cut(Http2Parser::new(), &segs, &cuts).0, whole);
    }

    #[test]
    fn garbage_never_panics(preface in any::<bool>(), chunks in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..400)), 0..12)) {
        let mut p = Http2Parser::with_config(Http2Config { max_frame: 256, max_header_block: 512, ..Http2Config::default() });
        let mut out = Vec::new();
        if preface {
            p.feed(C, 0, PREFACE, &mut out);
        }
        for (i, (to_server, bytes)) in chunks.iter().enumerate() {
            p.feed(if *to_server { C } else { S }, i as u64, bytes, &mut out);
            if i % 5 == 4 {
                p.gap(if *to_server { S } else { C }, 7);
            }
        }
        p.finish(99, &mut out);
    }

    #[test]
    fn random_frames_never_panic(frames in prop::collection::vec((any::<bool>(), 0u8..11, any::<u8>(), 0u32..8, prop::collection::vec(any::<u8>(), 0..40)), 0..30)) {
        let mut segs = vec![seg(C, 0, PREFACE)];
        for (i, (c, ty, flags, stream, payload)) in frames.iter().enumerate() {
            segs.push(seg(if *c { C } else { S }, i as u64, frame(*ty, *flags, *stream, payload)));
        }
        let whole = run(Http2Parser::new(), &segs);
        prop_assert_eq!(run_bytewise(Http2Parser::new(), &segs), whole);
    }
}
