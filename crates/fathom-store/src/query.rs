//! History queries with exactly the live path's semantics: `FlowFilter::matches` decides.
//!
//! SQL narrows the rows first (time range, pods, labels, IPs/CIDRs, ports, protocol, event,
//! type, comm, all on indexed or stored columns), and every row SQL returns is then decoded
//! and passed through `FlowFilter::matches` and the exact time bounds. So the pushdown only
//! has to be a superset of the answer; it is also exact today, which keeps it fast.
//! Time bounds are inclusive on both ends, like the live hub's `recent`.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::ControlFlow;
use std::path::Path;

use fathom_model::{
    Endpoint, Flow, FlowEvent, FlowFilter, L4Info, L4Protocol, Record, TcpInfo, Timestamp, Traffic,
};
use rusqlite::types::Value;
use rusqlite::Connection;

use crate::codec;
use crate::columns::{event_name, net_range, time_to_sql};
use crate::endpoints::EndpointIndex;
use crate::error::{SqlContext, StoreError};

/// `since`/`until` of a query; both inclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TimeRange {
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

impl TimeRange {
    fn contains(&self, t: Timestamp) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }
}

/// A WHERE clause under construction: conditions ANDed, `?` parameters in order.
#[derive(Default)]
struct Where {
    conds: Vec<String>,
    params: Vec<Value>,
}

impl Where {
    fn sql(&self) -> String {
        if self.conds.is_empty() {
            "1".into()
        } else {
            self.conds.join(" AND ")
        }
    }
}

/// A comma-separated list of integers; safe to inline (they are ours, not user text), and
/// inlining avoids SQLite's bound-parameter limit for namespaces with thousands of pods.
fn int_list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let mut s = String::new();
    for (i, v) in items.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{v}");
    }
    s
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

/// A flow whose only interesting part is its source; used to ask `FlowFilter::matches_flow`
/// questions about one endpoint description, so label semantics come from fathom-model.
fn probe_flow() -> Flow {
    let blank = Endpoint::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
    Flow {
        time: Timestamp::default(),
        flow_id: String::new(),
        event: FlowEvent::Start,
        source: blank.clone(),
        destination: blank,
        process: None,
        destination_process: None,
        l4: L4Info {
            protocol: L4Protocol::Tcp,
            tcp_flags: None,
            tcp_flags_out: None,
            tcp_flags_in: None,
            icmp_type: None,
            icmp_code: None,
        },
        traffic: Traffic::default(),
        tcp: TcpInfo::default(),
        first_seen: Timestamp::default(),
        last_seen: Timestamp::default(),
        end_reason: None,
        interface: None,
        node: String::new(),
    }
}

/// Endpoint-description ids for which `pred` holds. None: no description qualifies, so no
/// row can match and the query can stop right there.
fn ep_ids(index: &mut EndpointIndex, pred: impl FnMut(&mut Endpoint) -> bool) -> Option<String> {
    let ids = index.matching(pred);
    (!ids.is_empty()).then(|| int_list(ids))
}

/// Translate `filter` and `range` into SQL. None: provably nothing matches.
fn pushdown(
    conn: &Connection,
    path: &Path,
    index: &mut EndpointIndex,
    filter: &FlowFilter,
    range: TimeRange,
) -> Result<Option<Where>, StoreError> {
    let mut w = Where::default();

    if let Some(s) = range.since {
        w.conds.push("time >= ?".into());
        w.params.push(Value::Integer(time_to_sql(s)));
    }
    // Past i64::MAX the clamped bound would exclude clamped rows; leave it to Rust.
    if let Some(u) = range.until.filter(|u| i64::try_from(u.as_nanos()).is_ok()) {
        w.conds.push("time <= ?".into());
        w.params.push(Value::Integer(time_to_sql(u)));
    }

    if !filter.r#type.is_empty() {
        w.conds
            .push(format!("type IN ({})", placeholders(filter.r#type.len())));
        w.params
            .extend(filter.r#type.iter().map(|t| Value::Text(t.clone())));
    }

    let uses_endpoints = !(filter.pod.is_empty()
        && filter.from_pod.is_empty()
        && filter.to_pod.is_empty()
        && filter.label.is_empty());
    if uses_endpoints {
        index.refresh(conn, path)?;
    }
    if !filter.pod.is_empty() {
        let Some(ids) = ep_ids(index, |ep| filter.pod.iter().any(|s| s.matches(ep))) else {
            return Ok(None);
        };
        w.conds
            .push(format!("(src_ep IN ({ids}) OR dst_ep IN ({ids}))"));
    }
    if !filter.from_pod.is_empty() {
        let Some(ids) = ep_ids(index, |ep| filter.from_pod.iter().any(|s| s.matches(ep))) else {
            return Ok(None);
        };
        w.conds.push(format!("src_ep IN ({ids})"));
    }
    if !filter.to_pod.is_empty() {
        let Some(ids) = ep_ids(index, |ep| filter.to_pod.iter().any(|s| s.matches(ep))) else {
            return Ok(None);
        };
        w.conds.push(format!("dst_ep IN ({ids})"));
    }
    if !filter.label.is_empty() {
        // "All selectors on one side": ask the model whether a description satisfies them all
        // as a source (the probe's destination has no labels, so it cannot).
        let labels_only = FlowFilter {
            label: filter.label.clone(),
            ..Default::default()
        };
        let mut probe = probe_flow();
        let Some(ids) = ep_ids(index, |ep| {
            std::mem::swap(&mut probe.source, ep);
            let m = labels_only.matches_flow(&probe);
            std::mem::swap(&mut probe.source, ep);
            m
        }) else {
            return Ok(None);
        };
        w.conds
            .push(format!("(src_ep IN ({ids}) OR dst_ep IN ({ids}))"));
    }

    let mut ip_cond = |nets: &[ipnet::IpNet], cols: &[&str]| {
        if nets.is_empty() {
            return;
        }
        let mut alts = Vec::new();
        for n in nets {
            let (lo, hi) = net_range(n);
            for c in cols {
                alts.push(format!("{c} BETWEEN ? AND ?"));
                w.params.push(Value::Blob(lo.clone()));
                w.params.push(Value::Blob(hi.clone()));
            }
        }
        w.conds.push(format!("({})", alts.join(" OR ")));
    };
    ip_cond(&filter.ip, &["src_ip", "dst_ip"]);
    ip_cond(&filter.from_ip, &["src_ip"]);
    ip_cond(&filter.to_ip, &["dst_ip"]);

    if !filter.port.is_empty() {
        let ports = int_list(filter.port.iter());
        w.conds
            .push(format!("(src_port IN ({ports}) OR dst_port IN ({ports}))"));
    }
    if !filter.protocol.is_empty() {
        let nums = int_list(filter.protocol.iter().map(|p| p.ip_proto()));
        // Records without an L4 protocol (L7) pass when the filter names tcp or udp.
        let carried = filter
            .protocol
            .iter()
            .any(|p| matches!(p, L4Protocol::Tcp | L4Protocol::Udp));
        w.conds.push(if carried {
            format!("(protocol IN ({nums}) OR protocol IS NULL)")
        } else {
            format!("protocol IN ({nums})")
        });
    }
    if !filter.event.is_empty() {
        // Event names are our own static strings; records without an event pass.
        let names: Vec<String> = filter
            .event
            .iter()
            .map(|e| format!("'{}'", event_name(*e)))
            .collect();
        w.conds
            .push(format!("(event IS NULL OR event IN ({}))", names.join(",")));
    }
    if !filter.comm.is_empty() {
        let ph = placeholders(filter.comm.len());
        w.conds
            .push(format!("(src_comm IN ({ph}) OR dst_comm IN ({ph}))"));
        for _ in 0..2 {
            w.params
                .extend(filter.comm.iter().map(|c| Value::Text(c.clone())));
        }
    }
    Ok(Some(w))
}

/// `SELECT id … ORDER BY time, id` for a pushed-down filter.
fn ordered_ids_sql(w: &Where, newest_first: bool) -> String {
    let dir = if newest_first { "DESC" } else { "ASC" };
    format!(
        "SELECT id FROM records WHERE {} ORDER BY time {dir}, id {dir}",
        w.sql()
    )
}

/// Visit the matching records in time order (ties in insertion order), or newest first,
/// until `visit` breaks.
///
/// Two passes on one connection: the ordered query selects only ids (for a time range the
/// time index alone answers it, and any sort handles 16-byte keys instead of kilobyte
/// bodies), and each body is then fetched by id and decoded only when it is visited, so
/// `last` and early stops never decode more than they return.
pub(crate) fn scan(
    conn: &Connection,
    path: &Path,
    index: &mut EndpointIndex,
    filter: &FlowFilter,
    range: TimeRange,
    newest_first: bool,
    mut visit: impl FnMut(Record) -> ControlFlow<()>,
) -> Result<(), StoreError> {
    let Some(w) = pushdown(conn, path, index, filter, range)? else {
        return Ok(());
    };
    let mut ids = conn.prepare(&ordered_ids_sql(&w, newest_first)).ctx(path)?;
    let mut body = conn
        .prepare_cached("SELECT type, body FROM records WHERE id = ?1")
        .ctx(path)?;
    let mut rows = ids
        .query(rusqlite::params_from_iter(w.params.iter()))
        .ctx(path)?;
    let mut unreadable = 0u64;
    while let Some(row) = rows.next().ctx(path)? {
        let id: i64 = row.get(0).ctx(path)?;
        let (kind, text): (String, String) = body
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx(path)?;
        let record = match codec::decode(&kind, &text) {
            Ok(r) => r,
            Err(e) => {
                // One bad row must not hide the rest of the history.
                if unreadable == 0 {
                    tracing::warn!(path = %path.display(), id, error = %e, "skipping unreadable stored record");
                }
                unreadable += 1;
                continue;
            }
        };
        if range.contains(record.time()) && filter.matches(&record) && visit(record).is_break() {
            break;
        }
    }
    if unreadable > 1 {
        tracing::warn!(path = %path.display(), unreadable, "skipped unreadable stored records");
    }
    Ok(())
}

/// Matching records in time order; with `last`, the newest `last` of them, still oldest
/// first.
pub(crate) fn run(
    conn: &Connection,
    path: &Path,
    index: &mut EndpointIndex,
    filter: &FlowFilter,
    range: TimeRange,
    last: Option<usize>,
) -> Result<Vec<Record>, StoreError> {
    let mut out = Vec::new();
    match last {
        Some(0) => {}
        Some(n) => {
            scan(conn, path, index, filter, range, true, |r| {
                out.push(r);
                if out.len() >= n {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
            out.reverse();
        }
        None => scan(conn, path, index, filter, range, false, |r| {
            out.push(r);
            ControlFlow::Continue(())
        })?,
    }
    Ok(out)
}

/// The query plan SQLite picks for a filter (for tests and `EXPLAIN`-minded humans).
pub(crate) fn explain(
    conn: &Connection,
    path: &Path,
    index: &mut EndpointIndex,
    filter: &FlowFilter,
    range: TimeRange,
    last: Option<usize>,
) -> Result<Vec<String>, StoreError> {
    let Some(w) = pushdown(conn, path, index, filter, range)? else {
        return Ok(vec!["nothing can match".into()]);
    };
    let sql = format!("EXPLAIN QUERY PLAN {}", ordered_ids_sql(&w, last.is_some()));
    let mut stmt = conn.prepare(&sql).ctx(path)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(w.params.iter()), |r| {
            r.get::<_, String>(3)
        })
        .ctx(path)?;
    rows.collect::<Result<Vec<_>, _>>().ctx(path)
}
