//! Redis parser: hand-built RESP2/RESP3 conversations (from the RESP specification), chunking
//! invariance, garbage, limits, and a loopback capture of redis-cli against redis-server.

mod proto_support;

use fathom_l7::parser::{Detection, ProtocolParser};
use fathom_l7::redis::{detect, RedisConfig, RedisParser};
use fathom_model::l7::redis::RedisCommand;
use fathom_model::l7::{ExchangeKind, L7Detail, L7Exchange, L7Protocol};
use proptest::prelude::*;
use proto_support::*;

fn redis(e: &L7Exchange) -> &RedisCommand {
    match &e.detail {
        L7Detail::Redis(r) => r,
        other => panic!("not redis: {other:?}"),
    }
}

fn cmds(ex: &[L7Exchange]) -> Vec<(ExchangeKind, Option<&str>, Option<&str>)> {
    ex.iter()
        .map(|e| (e.kind, redis(e).command.as_deref(), redis(e).key.as_deref()))
        .collect()
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    v
}

#[test]
fn set_get_pair_with_latency_and_sizes() {
    let set = resp(&["SET", "user:1", "alice"]);
    let get = resp(&["get", "user:1"]);
    let segs = vec![
        seg(C, 1_000, &set),
        seg(S, 1_500, b"+OK\r\n"),
        seg(C, 2_000, &get),
        seg(S, 2_700, b"$5\r\nalice\r\n"),
    ];
    let ex = run_invariant(RedisParser::new, &segs);
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].kind, ExchangeKind::RequestResponse);
    assert_eq!(ex[0].latency_ns, Some(500));
    assert_eq!(ex[0].request_bytes, set.len() as u64);
    assert_eq!(ex[0].response_bytes, 5);
    assert_eq!(ex[0].status.as_deref(), Some("OK"));
    let r = redis(&ex[0]);
    assert_eq!(r.command.as_deref(), Some("SET"));
    assert_eq!(r.key.as_deref(), Some("user:1"));
    assert_eq!(r.args, 2);
    assert_eq!(r.reply_type.as_deref(), Some("simple_string"));
    assert_eq!(r.resp_version, Some(2));
    let g = redis(&ex[1]);
    assert_eq!(g.command.as_deref(), Some("GET"));
    assert_eq!(g.reply_type.as_deref(), Some("bulk_string"));
    assert_eq!(ex[1].latency_ns, Some(700));
    assert_eq!(ex[1].response_bytes, 11);
}

#[test]
fn pipelined_commands_pair_in_order() {
    let mut reqs = resp(&["INCR", "a"]);
    reqs.extend(resp(&["INCR", "b"]));
    reqs.extend(resp(&["LPUSH", "c", "x"]));
    let segs = vec![
        seg(C, 10, &reqs),
        seg(
            S,
            20,
            b":1\r\n:2\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        ),
    ];
    let ex = run_invariant(RedisParser::new, &segs);
    assert_eq!(
        cmds(&ex),
        vec![
            (ExchangeKind::RequestResponse, Some("INCR"), Some("a")),
            (ExchangeKind::RequestResponse, Some("INCR"), Some("b")),
            (ExchangeKind::RequestResponse, Some("LPUSH"), Some("c")),
        ]
    );
    assert!(!ex[1].error);
    assert!(ex[2].error);
    assert_eq!(ex[2].status.as_deref(), Some("WRONGTYPE"));
    assert_eq!(
        redis(&ex[2]).error.as_deref(),
        Some("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    assert_eq!(redis(&ex[2]).reply_type.as_deref(), Some("error"));
}

#[test]
fn inline_commands_with_quotes() {
    let segs = vec![
        seg(
            C,
            1,
            b"PING\r\nset \"my key\" 'it\\'s'\r\n\r\nexists k1 k2\n",
        ),
        seg(S, 2, b"+PONG\r\n+OK\r\n:1\r\n"),
    ];
    let ex = run_invariant(RedisParser::new, &segs);
    assert_eq!(
        cmds(&ex),
        vec![
            (ExchangeKind::RequestResponse, Some("PING"), None),
            (ExchangeKind::RequestResponse, Some("SET"), Some("my key")),
            (ExchangeKind::RequestResponse, Some("EXISTS"), Some("k1")),
        ]
    );
    assert_eq!(redis(&ex[1]).args, 2);
    assert_eq!(ex[0].request_bytes, 6);
    assert_eq!(redis(&ex[2]).reply_type.as_deref(), Some("integer"));
}

#[test]
fn subcommands_are_named() {
    let segs = vec![
        seg(C, 1, resp(&["client", "setname", "worker-1"])),
        seg(S, 2, b"+OK\r\n"),
        seg(C, 3, resp(&["CONFIG", "GET", "maxmemory"])),
        seg(S, 4, b"*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"),
    ];
    let ex = run_invariant(RedisParser::new, &segs);
    assert_eq!(redis(&ex[0]).command.as_deref(), Some("CLIENT SETNAME"));
    assert_eq!(redis(&ex[0]).key, None);
    assert_eq!(redis(&ex[1]).command.as_deref(), Some("CONFIG GET"));
    assert_eq!(redis(&ex[1]).reply_type.as_deref(), Some("array"));
}

#[test]
fn resp3_hello_map_set_push_and_attributes() {
    let hello = b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n";
    let push = b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n";
    let attr =
        b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.1923\r\n*2\r\n:2039123\r\n:9543892\r\n";
    let segs = vec![
        seg(C, 1, resp(&["HELLO", "3"])),
        seg(S, 2, hello),
        seg(C, 3, resp(&["SMEMBERS", "s"])),
        seg(S, 4, b"~2\r\n+a\r\n+b\r\n"),
        seg(S, 5, push),
        seg(C, 6, resp(&["GET", "k"])),
        seg(S, 7, b"_\r\n"),
        seg(C, 8, resp(&["FAKE", "x"])),
        seg(S, 9, attr),
        seg(C, 10, resp(&["GET", "big"])),
        seg(S, 11, b"$?\r\n;4\r\nHell\r\n;1\r\no\r\n;0\r\n"),
        seg(C, 12, resp(&["INCRBYFLOAT", "f", "1.5"])),
        seg(S, 13, b",1.5\r\n"),
    ];
    let ex = run_invariant(RedisParser::new, &segs);
    let kinds: Vec<_> = ex
        .iter()
        .map(|e| (e.kind, redis(e).reply_type.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (ExchangeKind::RequestResponse, "map"),
            (ExchangeKind::RequestResponse, "set"),
            (ExchangeKind::Message, "push"),
            (ExchangeKind::RequestResponse, "null"),
            (ExchangeKind::RequestResponse, "array"),
            (ExchangeKind::RequestResponse, "bulk_string"),
            (ExchangeKind::RequestResponse, "double"),
        ]
    );
    assert!(ex.iter().all(|e| redis(e).resp_version == Some(3)));
    assert_eq!(redis(&ex[2]).command.as_deref(), Some("MESSAGE"));
    assert_eq!(ex[2].response_bytes, push.len() as u64);
    assert_eq!(ex[4].response_bytes, attr.len() as u64);
    assert_eq!(redis(&ex[4]).command.as_deref(), Some("FAKE"));
}

#[test]
fn resp2_pubsub_confirmations_and_deliveries() {
    let segs = vec![
        seg(C, 1, resp(&["SUBSCRIBE", "a", "b"])),
        seg(
            S,
            2,
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n",
        ),
        seg(S, 3, b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n"),
        seg(C, 4, resp(&["RESET"])),
        seg(S, 5, b"+RESET\r\n"),
        seg(C, 6, resp(&["LRANGE", "l", "0", "-1"])),
        seg(S, 7, b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n"),
    ];
    let ex = run_invariant(RedisParser::new, &segs);
    assert_eq!(
        cmds(&ex),
        vec![
            (ExchangeKind::RequestResponse, Some("SUBSCRIBE"), None),
            (ExchangeKind::Message, Some("SUBSCRIBE"), None),
            (ExchangeKind::Message, Some("MESSAGE"), None),
            (ExchangeKind::RequestResponse, Some("RESET"), None),
            // After RESET the connection is no longer subscribed: a list that happens to
            // start with "message" is a reply.
            (ExchangeKind::RequestResponse, Some("LRANGE"), Some("l")),
        ]
    );
}

#[test]
fn client_reply_off_skip_on() {
    let segs = vec![
        seg(C, 1, resp(&["PING"])),
        seg(S, 2, b"+PONG\r\n"),
        seg(C, 3, resp(&["CLIENT", "REPLY", "OFF"])),
        seg(C, 4, resp(&["PING"])),
        seg(C, 5, resp(&["CLIENT", "REPLY", "ON"])),
        seg(S, 6, b"+OK\r\n"),
        seg(C, 7, resp(&["CLIENT", "REPLY", "SKIP"])),
        seg(C, 8, resp(&["PING"])),
        seg(C, 9, resp(&["PING"])),
        seg(S, 10, b"+PONG\r\n"),
    ];
    let ex = run_invariant(RedisParser::new, &segs);
    let k: Vec<_> = ex.iter().map(|e| e.kind).collect();
    use ExchangeKind::*;
    assert_eq!(
        k,
        vec![
            RequestResponse,
            RequestOnly,
            RequestOnly,
            RequestResponse,
            RequestOnly,
            RequestOnly,
            RequestResponse
        ]
    );
    assert_eq!(ex[3].latency_ns, Some(1));
    assert_eq!(
        ex[6].request_time,
        ex[6]
            .response_time
            .map(|t| fathom_model::Timestamp(t.0 - 1))
    );
}

#[test]
fn one_sided_exchanges() {
    // Picked up mid-stream: the reply's command was not seen.
    let segs = vec![seg(S, 1, b":42\r\n"), seg(C, 2, resp(&["GET", "x"]))];
    let ex = run_invariant(RedisParser::new, &segs);
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].kind, ExchangeKind::ResponseOnly);
    assert_eq!(ex[0].request_time, ex[0].response_time);
    assert_eq!(ex[1].kind, ExchangeKind::RequestOnly);
    assert_eq!(redis(&ex[1]).key.as_deref(), Some("x"));
}

#[test]
fn large_values_stream_through_small_limits() {
    let big = "v".repeat(3 * 1024 * 1024);
    let set = resp(&["SET", "k", &big]);
    let cfg = RedisConfig {
        max_line: 1024,
        ..RedisConfig::default()
    };
    let segs = vec![
        seg(C, 1, &set),
        seg(S, 2, b"+OK\r\n"),
        seg(C, 3, resp(&["GET", "k"])),
        seg(S, 4, {
            let mut r = format!("${}\r\n", big.len()).into_bytes();
            r.extend_from_slice(big.as_bytes());
            r.extend_from_slice(b"\r\n");
            r
        }),
    ];
    let (ex, stats) = run_cut(RedisParser::with_config(cfg), &segs, &[1500, 7]);
    assert_eq!(cmds(&ex).len(), 2);
    assert_eq!(ex[0].request_bytes, set.len() as u64);
    let header = format!("${}\r\n", big.len()).len() as u64;
    assert_eq!(ex[1].response_bytes, header + big.len() as u64 + 2);
    assert_eq!(stats.skipped_bytes, 0);
    assert_eq!(stats.overflow_bytes, 0);
}

#[test]
fn overlong_line_is_skipped_and_counted() {
    let cfg = RedisConfig {
        max_line: 64,
        ..RedisConfig::default()
    };
    let mut junk = b"SET ".to_vec();
    junk.extend(std::iter::repeat_n(b'x', 200));
    junk.extend_from_slice(b"\r\n");
    let mut data = junk.clone();
    data.extend(resp(&["GET", "k"]));
    let segs = vec![seg(C, 1, &data), seg(S, 2, b"$-1\r\n")];
    let ex = run_invariant(|| RedisParser::with_config(cfg), &segs);
    assert_eq!(
        cmds(&ex),
        vec![(ExchangeKind::RequestResponse, Some("GET"), Some("k"))]
    );
    assert_eq!(redis(&ex[0]).reply_type.as_deref(), Some("null"));
    let (_, stats) = run_cut(RedisParser::with_config(cfg), &segs, &[1]);
    assert_eq!(stats.skipped_bytes, junk.len() as u64);
}

#[test]
fn gap_resynchronises() {
    let mut p = RedisParser::new();
    let mut out = Vec::new();
    let set = resp(&["SET", "k", "some value"]);
    p.feed(C, 1, &set[..10], &mut out);
    p.gap(C, 7);
    // Rest of the lost command's line (which would parse as an inline command), then a
    // fresh command.
    p.feed(C, 2, b"ue\r\n", &mut out);
    p.feed(C, 3, &resp(&["GET", "k"]), &mut out);
    p.feed(S, 4, b"$3\r\nabc\r\n", &mut out);
    p.finish(5, &mut out);
    assert_eq!(
        cmds(&out),
        vec![(ExchangeKind::RequestResponse, Some("GET"), Some("k"))]
    );
    assert_eq!(p.stats().gap_bytes, 7);
    assert!(p.stats().skipped_bytes > 0);
}

#[test]
fn server_gap_gives_up_queued_commands() {
    let mut p = RedisParser::new();
    let mut out = Vec::new();
    p.feed(C, 1, &resp(&["GET", "a"]), &mut out);
    p.gap(S, 100);
    p.feed(S, 2, b":1\r\n", &mut out);
    p.finish(3, &mut out);
    let k: Vec<_> = out.iter().map(|e| e.kind).collect();
    assert_eq!(
        k,
        vec![ExchangeKind::RequestOnly, ExchangeKind::ResponseOnly]
    );
}

#[test]
fn pending_queue_is_bounded() {
    let cfg = RedisConfig {
        max_pending: 3,
        ..RedisConfig::default()
    };
    let mut data = Vec::new();
    for i in 0..5 {
        data.extend(resp(&["GET", &format!("k{i}")]));
    }
    let (ex, stats) = run_cut(RedisParser::with_config(cfg), &[seg(C, 1, &data)], &[]);
    assert_eq!(ex.len(), 5);
    assert!(stats.overflow_bytes > 0);
}

#[test]
fn detection() {
    assert_eq!(detect(C, &resp(&["PING"])), Detection::Match);
    assert_eq!(detect(C, b"*"), Detection::NeedMore);
    assert_eq!(
        detect(C, b"GET / HTTP/1.1\r\nHost: x\r\n"),
        Detection::NoMatch
    );
    assert_eq!(
        detect(S, b"-NOAUTH Authentication required.\r\n"),
        Detection::Match
    );
    assert_eq!(detect(S, b"HTTP/1.1 200 OK\r\n"), Detection::NoMatch);
}

/// redis-cli and raw-socket sessions against redis-server 7.0 on loopback (port 16379, so the
/// engine must recognise Redis from the bytes), replayed through the whole engine;
/// expectations from tshark's RESP dissector (commands per connection) and redis-cli's output.
#[test]
fn loopback_capture_of_redis_cli() {
    let (conns, stats) = replay_capture(&data("redis-cli.pcap"), &[L7Protocol::Redis]);
    let mut commands = Vec::new();
    let mut messages = 0;
    let mut errors = Vec::new();
    for e in conns.iter().flatten() {
        if e.kind == ExchangeKind::Message {
            messages += 1;
            continue;
        }
        if e.error {
            errors.push(e.status.clone().unwrap_or_default());
        }
        commands.push(redis(e).command.clone().unwrap_or_default());
    }
    let skipped = stats.skipped_bytes;
    assert_eq!(skipped, 0);
    let expected = [
        "SET",
        "GET",
        "GET",
        "LPUSH",
        "LRANGE",
        "INCR",
        "HSET",
        "HGETALL",
        "HELLO",
        "HELLO",
        "HELLO",
        "HGETALL",
        "HELLO",
        "SMEMBERS",
        "SET",
        "GET",
        "INCR",
        "PING",
        "ECHO",
        "PING",
        "ECHO",
        "QUIT",
        "PING",
        "GET",
        "SET",
        "QUIT",
        "SUBSCRIBE",
        "PUBLISH",
        "PUBLISH",
        "CLIENT REPLY",
        "PING",
        "CLIENT REPLY",
        "PING",
        "QUIT",
        "SET",
        "STRLEN",
        "DEBUG-NOPE",
        "LPOP",
    ];
    assert_eq!(commands, expected);
    // Second subscription confirmation and two deliveries.
    assert_eq!(messages, 3);
    assert_eq!(errors, vec!["ERR", "ERR", "WRONGTYPE"]);
}

fn conversation() -> Vec<Seg> {
    vec![
        seg(C, 1, resp(&["HELLO", "3"])),
        seg(S, 2, b"%1\r\n$5\r\nproto\r\n:3\r\n"),
        seg(
            C,
            3,
            [
                resp(&["SET", "a", "1"]),
                resp(&["GET", "a"]),
                b"PING\r\n".to_vec(),
            ]
            .concat(),
        ),
        seg(
            S,
            4,
            b"+OK\r\n$1\r\n1\r\n+PONG\r\n>2\r\n$4\r\npush\r\n_\r\n",
        ),
        seg(C, 5, resp(&["EXEC"])),
        seg(
            S,
            6,
            b"*2\r\n*1\r\n:1\r\n-ERR x\r\n|1\r\n+a\r\n+b\r\n:5\r\n",
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn chunking_never_changes_exchanges(cuts in prop::collection::vec(1usize..40, 1..8)) {
        let segs = conversation();
        let whole = run(RedisParser::new(), &segs);
        prop_assert_eq!(run_cut(RedisParser::new(), &segs, &cuts).0, whole);
    }

    #[test]
    fn garbage_never_panics(chunks in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..200)), 0..12)) {
        let mut p = RedisParser::with_config(RedisConfig { max_line: 64, ..RedisConfig::default() });
        let mut out = Vec::new();
        for (i, (to_server, bytes)) in chunks.iter().enumerate() {
            p.feed(if *to_server { C } else { S }, i as u64, bytes, &mut out);
        }
        p.finish(99, &mut out);
        let total: usize = chunks.iter().map(|c| c.1.len()).sum();
        prop_assert!(p.stats().skipped_bytes <= total as u64);
    }

    #[test]
    fn resp_shaped_garbage_never_panics(tokens in prop::collection::vec(prop::sample::select(vec![
        "*2\r\n", "*-1\r\n", "$3\r\nabc\r\n", "$-1\r\n", "%1\r\n", "|1\r\n", ">2\r\n", "~0\r\n",
        "*?\r\n", ".\r\n", "$?\r\n", ";2\r\nab\r\n", ";0\r\n", ":1\r\n", "+OK\r\n", "-ERR\r\n",
        "_\r\n", "#t\r\n", ",1.5\r\n", "(12\r\n", "!3\r\nerr\r\n", "=5\r\ntxt:a\r\n", "*99999999999\r\n",
        "$99999999999\r\n", "\r\n", "x\r\n",
    ]), 0..40), split in 1usize..10) {
        let data: Vec<u8> = tokens.concat().into_bytes();
        let segs = vec![seg(S, 1, &data), seg(C, 2, &data)];
        let whole = run(RedisParser::new(), &segs);
        prop_assert_eq!(run_cut(RedisParser::new(), &segs, &[split]).0, whole);
    }
}
