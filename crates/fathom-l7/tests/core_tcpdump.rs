//! The capture reader and L2-L4 decoding against tcpdump's own output for its test captures:
//! packet count, timestamps (in whichever `-t` format the test used, micro- or nanosecond)
//! and addresses/ports of every packet.

mod core_common;

use core_common::corpus;
use fathom_l7::capture::decode::{decode_ip, decode_transport, TransportHeader};
use fathom_l7::capture::link::strip_link;
use fathom_l7::capture::pcap::CaptureReader;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsFormat {
    None,
    Epoch,
    DeltaPrev,
    Date,
    DeltaFirst,
    TimeOfDay,
}

fn ts_format(args: &[&str]) -> TsFormat {
    for a in args {
        match *a {
            "-t" => return TsFormat::None,
            "-tt" => return TsFormat::Epoch,
            "-ttt" => return TsFormat::DeltaPrev,
            "-tttt" => return TsFormat::Date,
            "-ttttt" => return TsFormat::DeltaFirst,
            _ => {}
        }
    }
    // TESTrun adds -tttt unless the test asks for tcpdump's default (SPECIAL_t).
    if args.contains(&"SPECIAL_t") {
        TsFormat::TimeOfDay
    } else {
        TsFormat::Date
    }
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// "SS.frac" style value in ns; tcpdump prints the raw fraction field, so it is scaled, not
/// padded (an invalid 10-digit nanosecond fraction stays 10 digits).
fn frac_ns(s: &str, nano: bool) -> Option<i128> {
    let (sec, frac) = s.split_once('.')?;
    let sec: i128 = sec.parse().ok()?;
    let frac: i128 = frac.parse().ok()?;
    Some(sec * 1_000_000_000 + frac * if nano { 1 } else { 1000 })
}

fn hms_ns(s: &str, nano: bool) -> Option<i128> {
    let mut it = s.splitn(3, ':');
    let h: i128 = it.next()?.parse().ok()?;
    let m: i128 = it.next()?.parse().ok()?;
    Some((h * 3600 + m * 60) * 1_000_000_000 + frac_ns(it.next()?, nano)?)
}

/// Parse the timestamp at the start of `rest`; returns its value in ns (meaning depends on
/// the format).
fn parse_ts(fmt: TsFormat, rest: &str, nano: bool) -> Option<i128> {
    let mut tok = rest.split_whitespace();
    match fmt {
        TsFormat::None => Some(0),
        TsFormat::Epoch => frac_ns(tok.next()?, nano),
        TsFormat::Date => {
            let date = tok.next()?;
            let time = tok.next()?;
            let mut d = date.split('-').map(|x| x.parse::<i64>());
            let (y, m, dd) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
            Some(i128::from(days_from_civil(y, m, dd)) * 86_400_000_000_000 + hms_ns(time, nano)?)
        }
        TsFormat::DeltaPrev | TsFormat::DeltaFirst | TsFormat::TimeOfDay => {
            hms_ns(tok.next()?, nano)
        }
    }
}

/// Expected packets: (number, first line after the number, full text block).
fn expected_packets(out: &str) -> Vec<(u64, String, String)> {
    let mut v: Vec<(u64, String, String)> = Vec::new();
    for line in out.lines() {
        let trimmed = line.trim_start_matches(' ');
        let digits = trimmed.chars().take_while(|c| c.is_ascii_digit()).count();
        let is_packet = !line.starts_with('\t')
            && digits > 0
            && line.len() - trimmed.len() + digits <= 5
            && trimmed[digits..].starts_with("  ");
        if is_packet {
            let n = trimmed[..digits].parse().unwrap_or(0);
            let rest = trimmed[digits..].trim_start().to_string();
            v.push((n, rest.clone(), rest));
        } else if let Some(last) = v.last_mut() {
            last.2.push('\n');
            last.2.push_str(line);
        }
    }
    v
}

struct Mine {
    number: u64,
    ts: u64,
    /// What tcpdump must print for this packet: "a.p > b.q" or "a > b".
    tuple: Option<String>,
}

fn my_packets(path: &std::path::Path) -> Vec<Mine> {
    let mut r = CaptureReader::open(path).expect("open");
    let mut out = Vec::new();
    while let Ok(Some(p)) = r.next_packet() {
        let tuple = strip_link(p.linktype, p.data).ok().and_then(|off| {
            let ip = decode_ip(&p.data[off..]).ok()?;
            let first_part = ip.frag.is_none_or(|f| f.offset == 0);
            let t = first_part
                .then(|| {
                    decode_transport(ip.src, ip.dst, ip.proto, ip.payload, ip.payload_wire_len).ok()
                })
                .flatten();
            Some(match t.map(|t| t.header) {
                Some(h @ (TransportHeader::Tcp(_) | TransportHeader::Udp { .. })) => {
                    let (sp, dp) = h.ports();
                    format!("{}.{sp} > {}.{dp}", ip.src, ip.dst)
                }
                _ => format!("{} > {}", ip.src, ip.dst),
            })
        });
        out.push(Mine {
            number: p.number,
            ts: p.ts_ns,
            tuple,
        });
    }
    out
}

#[test]
fn tcpdump_counts_timestamps_and_tuples() {
    let Some(corpus) = corpus() else { return };
    let base = corpus.join("tcpdump");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(base.join("INDEX.json")).expect("INDEX.json"))
            .expect("json");
    let (mut cases, mut packets, mut ts_ok, mut tuples_checked, mut tuples_ok) = (0, 0, 0, 0, 0);
    let mut failures = Vec::new();
    for t in index["tests"].as_array().expect("tests") {
        let name = t["name"].as_str().unwrap_or_default();
        let input = base.join(t["input"].as_str().unwrap_or_default());
        let expected =
            std::fs::read_to_string(base.join(t["expected"].as_str().unwrap_or_default()))
                .unwrap_or_default();
        let args: Vec<&str> = t["args"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let arg_after = |flag: &str| {
            args.iter()
                .position(|a| *a == flag)
                .and_then(|i| args.get(i + 1))
                .and_then(|v| v.parse::<usize>().ok())
        };
        let skip = arg_after("--skip").unwrap_or(0);
        let count = arg_after("-c").unwrap_or(usize::MAX);
        let fmt = ts_format(&args);
        let nano = args.contains(&"--nano");

        let all = my_packets(&input);
        let mine: Vec<&Mine> = all.iter().skip(skip).take(count).collect();
        let want = expected_packets(&expected);
        cases += 1;
        if mine.len() != want.len() {
            failures.push(format!(
                "{name}: {} packets, tcpdump printed {}",
                mine.len(),
                want.len()
            ));
            continue;
        }
        for (i, (m, (num, first, block))) in mine.iter().zip(&want).enumerate() {
            packets += 1;
            if m.number != *num {
                failures.push(format!("{name}: packet numbered {} vs {num}", m.number));
            }
            // tcpdump prints microseconds unless --nano, truncating each timestamp before
            // taking differences: compare in the printed unit.
            let unit = if nano { 1 } else { 1000 };
            let my_ts = i128::from(m.ts) / unit;
            let first_ts = i128::from(all.get(skip).map_or(0, |p| p.ts)) / unit;
            let prev_ts = if i == 0 {
                my_ts
            } else {
                i128::from(mine[i - 1].ts) / unit
            };
            let expect = match fmt {
                TsFormat::None => Some(0),
                TsFormat::Epoch | TsFormat::Date => Some(my_ts),
                TsFormat::DeltaPrev => Some(my_ts - prev_ts),
                TsFormat::DeltaFirst => Some(my_ts - first_ts),
                TsFormat::TimeOfDay => Some(my_ts.rem_euclid(86_400_000_000_000 / unit)),
            };
            // --lengths puts "caplen N len M" before the timestamp.
            let shown = match first.strip_prefix("caplen ") {
                Some(r) => r.splitn(4, ' ').nth(3).unwrap_or_default(),
                None => first.as_str(),
            };
            let got = parse_ts(fmt, shown, nano);
            if got.map(|g| g / unit) == expect {
                ts_ok += 1;
            } else {
                failures.push(format!(
                    "{name} #{num}: timestamp {got:?} vs ours {expect:?} ({first})"
                ));
            }
            if let Some(tuple) = &m.tuple {
                tuples_checked += 1;
                if block.contains(tuple.as_str()) {
                    tuples_ok += 1;
                } else {
                    failures.push(format!("{name} #{num}: {tuple:?} not in {first:?}"));
                }
            }
        }
    }
    println!(
        "tcpdump: {cases} cases, {packets} packets; timestamps {ts_ok}/{packets}; address/port tuples {tuples_ok}/{tuples_checked}"
    );
    for f in &failures {
        println!("  mismatch: {f}");
    }
    assert!(cases >= 90, "INDEX.json cases found: {cases}");
    assert!(failures.is_empty(), "{} mismatches", failures.len());
}
