//! What of a record goes into the indexed columns. One exhaustive `match` per record kind: a
//! new `Record` variant does not compile until someone decides its columns here.
//!
//! The contract with `query.rs`: for every record, the SQL conditions built from a filter must
//! hold whenever `FlowFilter::matches` holds (SQL may let extra rows through, never hold one
//! back; Rust has the last word). The proptest in `tests/equivalence.rs` checks it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use fathom_model::{Endpoint, FlowEvent, Record, Timestamp};
use ipnet::IpNet;

/// The indexed columns of one record (see the table in `schema.rs`).
pub(crate) struct Columns<'a> {
    pub time: i64,
    pub kind: &'static str,
    pub event: Option<&'static str>,
    pub protocol: Option<u8>,
    pub src: Option<&'a Endpoint>,
    pub dst: Option<&'a Endpoint>,
    pub src_comm: Option<&'a str>,
    pub dst_comm: Option<&'a str>,
}

pub(crate) fn columns(r: &Record) -> Columns<'_> {
    match r {
        Record::Flow(f) => Columns {
            time: time_to_sql(f.time),
            kind: r.type_name(),
            event: Some(event_name(f.event)),
            protocol: Some(f.l4.protocol.ip_proto()),
            src: Some(&f.source),
            dst: Some(&f.destination),
            src_comm: f.process.as_ref().map(|p| p.comm.as_str()),
            dst_comm: f.destination_process.as_ref().map(|p| p.comm.as_str()),
        },
        // `FlowFilter` lets an L7 record through any event filter and through a protocol filter
        // that names tcp or udp; NULL in `event`/`protocol` is how query.rs recognises that.
        Record::L7(l) => Columns {
            time: time_to_sql(l.time),
            kind: r.type_name(),
            event: None,
            protocol: None,
            src: Some(&l.source),
            dst: Some(&l.destination),
            src_comm: l.process.as_ref().map(|p| p.comm.as_str()),
            dst_comm: None,
        },
        // `FlowFilter` judges a drop without an IP header as if both sides were
        // `UNKNOWN_ENDPOINT` (so `--ip 0.0.0.0/0` or `--port 0` select it); the columns say
        // the same. A missing protocol is NULL, which the protocol pushdown lets through
        // whenever tcp or udp is asked for, and Rust then rejects: a superset, as allowed.
        // No comm: drops never match a comm filter. The drop reason filter is not pushed
        // down (flows pass it, so it barely narrows anything).
        Record::Drop(d) => Columns {
            time: time_to_sql(d.time),
            kind: r.type_name(),
            event: None,
            protocol: d.protocol.map(|p| p.ip_proto()),
            src: Some(d.source.as_ref().unwrap_or(&UNKNOWN_ENDPOINT)),
            dst: Some(d.destination.as_ref().unwrap_or(&UNKNOWN_ENDPOINT)),
            src_comm: None,
            dst_comm: None,
        },
        // Like a drop: exact protocol, both endpoints, never a comm; the verdict filter is
        // checked in Rust.
        Record::PolicyVerdict(v) => Columns {
            time: time_to_sql(v.time),
            kind: r.type_name(),
            event: None,
            protocol: Some(v.protocol.ip_proto()),
            src: Some(&v.source),
            dst: Some(&v.destination),
            src_comm: None,
            dst_comm: None,
        },
        Record::Alert(a) => Columns {
            time: time_to_sql(a.time),
            kind: r.type_name(),
            event: None,
            protocol: None,
            src: Some(a.source.as_ref().unwrap_or(&UNKNOWN_ENDPOINT)),
            dst: Some(a.destination.as_ref().unwrap_or(&UNKNOWN_ENDPOINT)),
            src_comm: None,
            dst_comm: None,
        },
    }
}

/// What `FlowFilter::matches` substitutes for a missing endpoint.
static UNKNOWN_ENDPOINT: Endpoint = Endpoint {
    ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    port: 0,
    pod: None,
    namespace: None,
    labels: BTreeMap::new(),
};

/// The JSON spelling of a flow event (serde `lowercase`), as stored in `event`.
pub(crate) fn event_name(e: FlowEvent) -> &'static str {
    match e {
        FlowEvent::Start => "start",
        FlowEvent::Update => "update",
        FlowEvent::End => "end",
    }
}

/// SQLite integers are i64; nanoseconds overflow that in 2262. Clamping keeps the order
/// (`a <= b` ⇒ `clamp(a) <= clamp(b)`), and queries recheck times exactly in Rust.
pub(crate) fn time_to_sql(t: Timestamp) -> i64 {
    i64::try_from(t.as_nanos()).unwrap_or(i64::MAX)
}

pub(crate) fn time_from_sql(v: i64) -> Timestamp {
    Timestamp::from_nanos(u64::try_from(v).unwrap_or(0))
}

/// A family byte then the address bytes, so IPv4 and IPv6 never compare equal (as in
/// `IpNet::contains`) and a CIDR is one contiguous byte range.
pub(crate) fn ip_key(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => [&[4u8][..], &a.octets()].concat(),
        IpAddr::V6(a) => [&[6u8][..], &a.octets()].concat(),
    }
}

/// The inclusive `ip_key` range of the addresses inside `net`.
pub(crate) fn net_range(net: &IpNet) -> (Vec<u8>, Vec<u8>) {
    (ip_key(net.network()), ip_key(net.broadcast()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_keys_order_within_a_family_and_keep_families_apart() {
        let net: IpNet = "10.1.0.0/16".parse().unwrap();
        let (lo, hi) = net_range(&net);
        let inside = ip_key("10.1.200.3".parse().unwrap());
        let outside = ip_key("10.2.0.0".parse().unwrap());
        assert!(lo <= inside && inside <= hi);
        assert!(outside > hi);
        let mapped = ip_key("::ffff:10.1.0.1".parse().unwrap());
        assert!(
            mapped > hi,
            "an IPv4-mapped IPv6 address is not in an IPv4 net"
        );
        let (lo6, hi6) = net_range(&"::/0".parse().unwrap());
        assert!(lo6 <= mapped && mapped <= hi6);
        assert!(inside < lo6);
    }

    #[test]
    fn times_clamp_monotonically() {
        assert_eq!(time_to_sql(Timestamp::from_nanos(5)), 5);
        assert_eq!(time_to_sql(Timestamp::from_nanos(u64::MAX)), i64::MAX);
        assert_eq!(time_from_sql(-1), Timestamp::from_nanos(0));
    }
}
