//! Rust mirror of `bpf/l7.h`: the live L7 capture's socket payload events and counters.
//! `tests::layout_matches_c` checks it against the C compiler's layout (csrc/abi_l7_layout.c).

use super::{Pod, COMM_LEN};

pub const L7_MAX_DATA: usize = 8192;
pub const L7_DEFAULT_CAP: u32 = 4096;

pub const EV_L7_DATA: u32 = 40;
pub const EV_L7_CLOSE: u32 = 41;

pub const L7_EGRESS: u8 = 0;
pub const L7_INGRESS: u8 = 1;

pub const L7_ROLE_UNKNOWN: u8 = 0;
pub const L7_ROLE_CLIENT: u8 = 1;
pub const L7_ROLE_SERVER: u8 = 2;

pub const L7_F_TRUNCATED: u8 = 1 << 0;
pub const L7_F_TLS: u8 = 1 << 1;

/// Attach cookies of the libssl uprobes (`FATHOM_TLS_COOKIE_*`).
pub const TLS_COOKIE_READ: u64 = 1 << 0;
pub const TLS_COOKIE_EX: u64 = 1 << 1;

/// `enum fathom_l7_proto`: the kernel's guess from a connection's first bytes.
pub const L7_PROTO_UNKNOWN: u8 = 0;
pub const L7_PROTO_HTTP: u8 = 1;
pub const L7_PROTO_HTTP2: u8 = 2;
pub const L7_PROTO_TLS: u8 = 3;
pub const L7_PROTO_DNS: u8 = 4;
pub const L7_PROTO_REDIS: u8 = 5;
pub const L7_PROTO_KAFKA: u8 = 6;
pub const L7_PROTO_POSTGRES: u8 = 7;
pub const L7_PROTO_MYSQL: u8 = 8;

/// `enum fathom_l7_counter`, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum L7Counter {
    EventsSent = 0,
    EventsLost,
    Truncated,
    ConnsKnown,
    ConnsMuted,
    CallsMuted,
    BytesShipped,
    MapFull,
    PeerLocal,
    TlsEvents,
    TlsNoFd,
}

pub const L7_COUNTER_MAX: usize = 11;

impl L7Counter {
    pub const ALL: [L7Counter; L7_COUNTER_MAX] = [
        L7Counter::EventsSent,
        L7Counter::EventsLost,
        L7Counter::Truncated,
        L7Counter::ConnsKnown,
        L7Counter::ConnsMuted,
        L7Counter::CallsMuted,
        L7Counter::BytesShipped,
        L7Counter::MapFull,
        L7Counter::PeerLocal,
        L7Counter::TlsEvents,
        L7Counter::TlsNoFd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            L7Counter::EventsSent => "events_sent",
            L7Counter::EventsLost => "events_lost",
            L7Counter::Truncated => "truncated",
            L7Counter::ConnsKnown => "conns_known",
            L7Counter::ConnsMuted => "conns_muted",
            L7Counter::CallsMuted => "calls_muted",
            L7Counter::BytesShipped => "bytes_shipped",
            L7Counter::MapFull => "map_full",
            L7Counter::PeerLocal => "peer_local",
            L7Counter::TlsEvents => "tls_events",
            L7Counter::TlsNoFd => "tls_no_fd",
        }
    }
}

/// `struct fathom_l7_event`; `data_len` payload bytes follow it in the record.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct L7EventRaw {
    pub r#type: u32,
    pub pid: u32,
    pub tid: u32,
    pub fd: i32,
    pub ts_ns: u64,
    pub cookie: u64,
    pub cgroup_id: u64,
    pub ret: i64,
    pub data_len: u32,
    pub direction: u8,
    pub protocol: u8,
    pub role: u8,
    pub flags: u8,
    pub family: u8,
    pub l4proto: u8,
    pub local_port: u16,
    pub remote_port: u16,
    pub pad: u16,
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    pub comm: [u8; COMM_LEN],
}

unsafe impl Pod for L7EventRaw {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::layout::{c_table, layout, LayoutEntry};
    use std::collections::BTreeMap;
    use std::mem::offset_of;

    extern "C" {
        static fathom_abi_l7_layout: [LayoutEntry; 0];
    }

    fn c_layout() -> BTreeMap<String, u64> {
        // SAFETY: the C table is a static array terminated by a NULL name.
        unsafe { c_table(fathom_abi_l7_layout.as_ptr()) }
    }

    #[test]
    fn layout_matches_c() {
        let mut rust = BTreeMap::new();
        layout!(
            rust,
            "fathom_l7_event",
            L7EventRaw,
            [
                pid,
                tid,
                fd,
                ts_ns,
                cookie,
                cgroup_id,
                ret,
                data_len,
                direction,
                protocol,
                role,
                flags,
                family,
                l4proto,
                local_port,
                remote_port,
                pad,
                local_addr,
                remote_addr,
                comm
            ]
        );
        rust.insert(
            "fathom_l7_event.type".into(),
            offset_of!(L7EventRaw, r#type) as u64,
        );
        rust.insert("const.FATHOM_L7_MAX_DATA".into(), L7_MAX_DATA as u64);
        rust.insert("const.FATHOM_L7_DEFAULT_CAP".into(), L7_DEFAULT_CAP as u64);
        rust.insert("enum.FATHOM_EV_L7_DATA".into(), EV_L7_DATA as u64);
        rust.insert("enum.FATHOM_EV_L7_CLOSE".into(), EV_L7_CLOSE as u64);
        rust.insert("enum.FATHOM_L7_PROTO_MYSQL".into(), L7_PROTO_MYSQL as u64);
        rust.insert("enum.FATHOM_L7_CNT_MAX".into(), L7_COUNTER_MAX as u64);
        rust.insert("const.FATHOM_L7_F_TLS".into(), L7_F_TLS as u64);
        rust.insert("const.FATHOM_L7_ROLE_SERVER".into(), L7_ROLE_SERVER as u64);
        rust.insert("const.FATHOM_TLS_COOKIE_READ".into(), TLS_COOKIE_READ);
        rust.insert("const.FATHOM_TLS_COOKIE_EX".into(), TLS_COOKIE_EX);
        rust.insert(
            "enum.FATHOM_L7_CNT_TLS_NO_FD".into(),
            L7Counter::TlsNoFd as u64,
        );
        assert_eq!(rust, c_layout(), "bpf/l7.h and src/abi/l7.rs disagree");
    }

    #[test]
    fn counters_are_in_enum_order() {
        for (i, c) in L7Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }
}
