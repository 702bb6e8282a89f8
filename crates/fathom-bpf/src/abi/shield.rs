//! Rust mirror of `bpf/shield.h`, the XDP shield's part of the ABI. `tests::layout_matches_c`
//! checks it against the C compiler's layout (`fathom_shield_abi_layout` in csrc/abi_layout.c).

use super::Pod;

pub const EV_SHIELD_DROP: u32 = 64;
pub const MODE_ENFORCE: u32 = 0;
pub const MODE_MONITOR: u32 = 1;

/// `enum fathom_shield_reason`, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum ShieldReason {
    Blocklist = 0,
    SynRate,
    PktRate,
    IpHeader,
    IpLength,
    L4Truncated,
    TcpSynFin,
    TcpSynRst,
    TcpNull,
    TcpXmas,
}

pub const SHIELD_REASON_MAX: usize = 10;

impl ShieldReason {
    pub const ALL: [ShieldReason; SHIELD_REASON_MAX] = [
        ShieldReason::Blocklist,
        ShieldReason::SynRate,
        ShieldReason::PktRate,
        ShieldReason::IpHeader,
        ShieldReason::IpLength,
        ShieldReason::L4Truncated,
        ShieldReason::TcpSynFin,
        ShieldReason::TcpSynRst,
        ShieldReason::TcpNull,
        ShieldReason::TcpXmas,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ShieldReason::Blocklist => "blocklist",
            ShieldReason::SynRate => "syn_rate",
            ShieldReason::PktRate => "packet_rate",
            ShieldReason::IpHeader => "bad_ip_header",
            ShieldReason::IpLength => "bad_ip_length",
            ShieldReason::L4Truncated => "truncated_l4",
            ShieldReason::TcpSynFin => "tcp_syn_fin",
            ShieldReason::TcpSynRst => "tcp_syn_rst",
            ShieldReason::TcpNull => "tcp_null",
            ShieldReason::TcpXmas => "tcp_xmas",
        }
    }

    pub fn from_raw(v: u32) -> Option<ShieldReason> {
        Self::ALL.get(v as usize).copied()
    }
}

/// `enum fathom_shield_proto`, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum ShieldProto {
    Tcp = 0,
    Udp,
    Icmp,
    OtherIp,
    NonIp,
}

pub const SHIELD_PROTO_MAX: usize = 5;

impl ShieldProto {
    pub const ALL: [ShieldProto; SHIELD_PROTO_MAX] = [
        ShieldProto::Tcp,
        ShieldProto::Udp,
        ShieldProto::Icmp,
        ShieldProto::OtherIp,
        ShieldProto::NonIp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ShieldProto::Tcp => "tcp",
            ShieldProto::Udp => "udp",
            ShieldProto::Icmp => "icmp",
            ShieldProto::OtherIp => "other_ip",
            ShieldProto::NonIp => "non_ip",
        }
    }
}

/// `enum fathom_shield_stat`, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum ShieldStat {
    Passed = 0,
    Dropped,
    Monitored,
    Allowlisted,
    BlockExpired,
    EventsSent,
    EventsSuppressed,
    EventsLost,
    BucketsFull,
}

pub const SHIELD_STAT_MAX: usize = 9;

impl ShieldStat {
    pub const ALL: [ShieldStat; SHIELD_STAT_MAX] = [
        ShieldStat::Passed,
        ShieldStat::Dropped,
        ShieldStat::Monitored,
        ShieldStat::Allowlisted,
        ShieldStat::BlockExpired,
        ShieldStat::EventsSent,
        ShieldStat::EventsSuppressed,
        ShieldStat::EventsLost,
        ShieldStat::BucketsFull,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ShieldStat::Passed => "passed",
            ShieldStat::Dropped => "dropped",
            ShieldStat::Monitored => "monitored",
            ShieldStat::Allowlisted => "allowlisted",
            ShieldStat::BlockExpired => "block_expired",
            ShieldStat::EventsSent => "events_sent",
            ShieldStat::EventsSuppressed => "events_suppressed",
            ShieldStat::EventsLost => "events_lost",
            ShieldStat::BucketsFull => "buckets_full",
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct ShieldLpmKeyRaw {
    pub prefixlen: u32,
    pub addr: [u8; 16],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShieldBlockRaw {
    pub expires_ns: u64,
    pub added_ns: u64,
    pub origin: u32,
    pub pad: u32,
}

pub const SHIELD_NOTE_LEN: usize = 120;

/// `struct fathom_shield_note`: a block's reason, NUL-padded UTF-8.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShieldNoteRaw {
    pub text: [u8; SHIELD_NOTE_LEN],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShieldAllowRaw {
    pub flags: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShieldConfigRaw {
    pub mode: u32,
    pub events_per_sec: u32,
    pub syn_rate: u64,
    pub syn_burst: u64,
    pub pkt_rate: u64,
    pub pkt_burst: u64,
    pub clock_ns: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShieldBucketRaw {
    pub last_ns: u64,
    pub syn_tokens: u64,
    pub pkt_tokens: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShieldEventRaw {
    pub r#type: u32,
    pub reason: u32,
    pub ts_ns: u64,
    pub ifindex: u32,
    pub suppressed: u32,
    pub len: u32,
    pub family: u8,
    pub proto: u8,
    pub tcp_flags: u8,
    pub monitor: u8,
    pub sport: u16,
    pub dport: u16,
    pub pad: u32,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShieldEventLimitRaw {
    pub window_start_ns: u64,
    pub emitted: u32,
    pub suppressed: u32,
}

unsafe impl Pod for ShieldLpmKeyRaw {}
unsafe impl Pod for ShieldBlockRaw {}
unsafe impl Pod for ShieldNoteRaw {}
unsafe impl Pod for ShieldAllowRaw {}
unsafe impl Pod for ShieldConfigRaw {}
unsafe impl Pod for ShieldBucketRaw {}
unsafe impl Pod for ShieldEventRaw {}
unsafe impl Pod for ShieldEventLimitRaw {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::abi::layout::{c_table, layout, LayoutEntry};
    use std::mem::offset_of;

    extern "C" {
        static fathom_shield_abi_layout: [LayoutEntry; 0];
    }

    fn c_layout() -> BTreeMap<String, u64> {
        // SAFETY: the C table is a static array terminated by a NULL name.
        unsafe { c_table(fathom_shield_abi_layout.as_ptr()) }
    }

    #[test]
    fn layout_matches_c() {
        let mut rust = BTreeMap::new();
        layout!(
            rust,
            "fathom_shield_lpm_key",
            ShieldLpmKeyRaw,
            [prefixlen, addr]
        );
        layout!(
            rust,
            "fathom_shield_block",
            ShieldBlockRaw,
            [expires_ns, added_ns, origin, pad]
        );
        layout!(rust, "fathom_shield_note", ShieldNoteRaw, [text]);
        rust.insert(
            "const.FATHOM_SHIELD_NOTE_LEN".into(),
            SHIELD_NOTE_LEN as u64,
        );
        layout!(rust, "fathom_shield_allow", ShieldAllowRaw, [flags, pad]);
        layout!(
            rust,
            "fathom_shield_config",
            ShieldConfigRaw,
            [
                mode,
                events_per_sec,
                syn_rate,
                syn_burst,
                pkt_rate,
                pkt_burst,
                clock_ns
            ]
        );
        layout!(
            rust,
            "fathom_shield_bucket",
            ShieldBucketRaw,
            [last_ns, syn_tokens, pkt_tokens]
        );
        layout!(
            rust,
            "fathom_shield_event",
            ShieldEventRaw,
            [
                reason, ts_ns, ifindex, suppressed, len, family, proto, tcp_flags, monitor, sport,
                dport, pad, saddr, daddr
            ]
        );
        rust.insert(
            "fathom_shield_event.type".into(),
            offset_of!(ShieldEventRaw, r#type) as u64,
        );
        layout!(
            rust,
            "fathom_shield_event_limit",
            ShieldEventLimitRaw,
            [window_start_ns, emitted, suppressed]
        );
        rust.insert("enum.FATHOM_SHIELD_R_MAX".into(), SHIELD_REASON_MAX as u64);
        rust.insert("enum.FATHOM_SHIELD_P_MAX".into(), SHIELD_PROTO_MAX as u64);
        rust.insert("enum.FATHOM_SHIELD_S_MAX".into(), SHIELD_STAT_MAX as u64);
        rust.insert(
            "enum.FATHOM_SHIELD_R_TCP_XMAS".into(),
            ShieldReason::TcpXmas as u64,
        );
        rust.insert(
            "enum.FATHOM_SHIELD_S_BUCKETS_FULL".into(),
            ShieldStat::BucketsFull as u64,
        );
        rust.insert("const.FATHOM_EV_SHIELD_DROP".into(), EV_SHIELD_DROP as u64);
        rust.insert("const.FATHOM_SHIELD_MONITOR".into(), MODE_MONITOR as u64);
        assert_eq!(
            rust,
            c_layout(),
            "bpf/shield.h and src/abi/shield.rs disagree"
        );
    }

    #[test]
    fn enums_are_in_order() {
        for (i, r) in ShieldReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert_eq!(ShieldReason::from_raw(i as u32), Some(*r));
        }
        assert_eq!(ShieldReason::from_raw(SHIELD_REASON_MAX as u32), None);
        for (i, p) in ShieldProto::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i);
        }
        for (i, s) in ShieldStat::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }
}
