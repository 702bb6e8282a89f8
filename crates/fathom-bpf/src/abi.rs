//! Rust mirror of `bpf/fathom.h`, the kernel/user ABI. Every struct here is `#[repr(C)]` with
//! the header's exact fields; `tests::layout_matches_c` checks sizes and offsets against the C
//! compiler's own layout of the header (csrc/abi_layout.c), so a change on one side without the
//! other fails the build's tests.

use std::mem::size_of;

/// Live L7 capture events (bpf/l7.h).
pub mod l7;
#[cfg(test)]
mod layout;
pub mod shield;

pub const COMM_LEN: usize = 16;
pub const FILENAME_LEN: usize = 256;
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

pub const EV_FLOW_START: u32 = 1;
pub const EV_FLOW_END: u32 = 2;
pub const EV_SOCK_CONNECT: u32 = 3;
pub const EV_SOCK_ACCEPT: u32 = 4;
pub const EV_SOCK_CLOSE: u32 = 5;
pub const EV_SOCK_TUPLE: u32 = 6;
pub const EV_PROC_EXEC: u32 = 7;
pub const EV_PROC_EXIT: u32 = 8;
pub const EV_DROP: u32 = 9;

pub const END_FIN: u32 = 1;
pub const END_RST: u32 = 2;

pub const FLOW_FIN_LO: u32 = 1 << 0;
pub const FLOW_FIN_HI: u32 = 1 << 1;
pub const FLOW_RST: u32 = 1 << 2;
pub const FLOW_END_SENT: u32 = 1 << 3;

pub const IFACE_L2_ETHER: u32 = 1 << 0;
pub const IFACE_COUNT_INGRESS: u32 = 1 << 1;
pub const IFACE_COUNT_EGRESS: u32 = 1 << 2;

/// `enum fathom_counter`, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum Counter {
    Packets = 0,
    DupSkipped,
    NonIp,
    Malformed,
    Truncated,
    Fragments,
    FragUnknown,
    FlowsCreated,
    FlowUpdateFailed,
    EventsLost,
    SockMapFull,
    TcpRetransmits,
    EventsSent,
}

pub const COUNTER_MAX: usize = 13;

impl Counter {
    pub const ALL: [Counter; COUNTER_MAX] = [
        Counter::Packets,
        Counter::DupSkipped,
        Counter::NonIp,
        Counter::Malformed,
        Counter::Truncated,
        Counter::Fragments,
        Counter::FragUnknown,
        Counter::FlowsCreated,
        Counter::FlowUpdateFailed,
        Counter::EventsLost,
        Counter::SockMapFull,
        Counter::TcpRetransmits,
        Counter::EventsSent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Counter::Packets => "packets",
            Counter::DupSkipped => "dup_skipped",
            Counter::NonIp => "non_ip",
            Counter::Malformed => "malformed",
            Counter::Truncated => "truncated",
            Counter::Fragments => "fragments",
            Counter::FragUnknown => "fragments_unmatched",
            Counter::FlowsCreated => "flows_created",
            Counter::FlowUpdateFailed => "flow_update_failed",
            Counter::EventsLost => "events_lost",
            Counter::SockMapFull => "sock_map_full",
            Counter::TcpRetransmits => "tcp_retransmits",
            Counter::EventsSent => "events_sent",
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowKeyRaw {
    pub addr_lo: [u8; 16],
    pub addr_hi: [u8; 16],
    pub port_lo: u16,
    pub port_hi: u16,
    pub proto: u8,
    pub family: u8,
    pub pad: [u8; 2],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowValueRaw {
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub payload_bytes: [u64; 2],
    pub socket_cookie: u64,
    pub tcp_flags: [u32; 2],
    pub state: u32,
    pub ifindex: u32,
    pub initiator: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub pad: [u8; 5],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowEventRaw {
    pub r#type: u32,
    pub end_reason: u32,
    pub ts_ns: u64,
    pub key: FlowKeyRaw,
    pub value: FlowValueRaw,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchedIfaceRaw {
    pub flags: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SockEventRaw {
    pub r#type: u32,
    pub pid: u32,
    pub tid: u32,
    pub family: u8,
    pub proto: u8,
    pub failed: u8,
    pub pad0: u8,
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    pub local_port: u16,
    pub remote_port: u16,
    pub srtt_us: u32,
    pub cgroup_id: u64,
    pub cookie: u64,
    pub ts_ns: u64,
    pub handshake_ns: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub retransmits: u32,
    pub pad1: u32,
    pub comm: [u8; COMM_LEN],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcEventRaw {
    pub r#type: u32,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub cgroup_id: u64,
    pub ts_ns: u64,
    pub exit_code: i32,
    pub pad: u32,
    pub comm: [u8; COMM_LEN],
    pub filename: [u8; FILENAME_LEN],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SockOwnerRaw {
    pub pid: u32,
    pub tid: u32,
    pub cgroup_id: u64,
    pub comm: [u8; COMM_LEN],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropEventRaw {
    pub r#type: u32,
    pub reason: u32,
    pub ts_ns: u64,
    pub location: u64,
    pub ifindex: u32,
    pub netns: u32,
    pub len: u32,
    pub suppressed: u32,
    pub l3_proto: u16,
    pub family: u8,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropLimitRaw {
    pub window_start_ns: u64,
    pub emitted: u32,
    pub suppressed: u32,
}

/// Plain-old-data: every bit pattern is a valid value (integers and integer arrays only), so a
/// byte buffer of the right length can be reinterpreted as `Self`.
///
/// # Safety
/// Implement only for `#[repr(C)]` structs made of integers and arrays of integers.
pub unsafe trait Pod: Copy + Sized {
    /// Decode from the start of `bytes`; `None` when the buffer is too short (a kernel/user
    /// version mismatch or a corrupt record, never a reason to panic).
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < size_of::<Self>() {
            return None;
        }
        // SAFETY: length checked above; Self is Pod, so any bytes are a valid value; the read
        // is unaligned because ringbuf records are only 8-byte aligned by convention.
        Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const Self) })
    }

    fn as_bytes(&self) -> &[u8] {
        // SAFETY: Self is repr(C) plain data without padding bytes left uninitialised by us
        // (every struct spells its padding out as fields).
        unsafe { std::slice::from_raw_parts(self as *const Self as *const u8, size_of::<Self>()) }
    }
}

unsafe impl Pod for FlowKeyRaw {}
unsafe impl Pod for FlowValueRaw {}
unsafe impl Pod for FlowEventRaw {}
unsafe impl Pod for WatchedIfaceRaw {}
unsafe impl Pod for SockEventRaw {}
unsafe impl Pod for ProcEventRaw {}
unsafe impl Pod for SockOwnerRaw {}
unsafe impl Pod for DropEventRaw {}
unsafe impl Pod for DropLimitRaw {}

/// A NUL-terminated C string field as text (lossy: comm may hold any bytes).
pub fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::abi::layout::{c_table, layout, LayoutEntry};
    use std::mem::offset_of;

    extern "C" {
        static fathom_abi_layout: [LayoutEntry; 0];
    }

    fn c_layout() -> BTreeMap<String, u64> {
        // SAFETY: the C table is a static array terminated by a NULL name.
        unsafe { c_table(fathom_abi_layout.as_ptr()) }
    }

    #[test]
    fn layout_matches_c() {
        let mut rust = BTreeMap::new();
        layout!(
            rust,
            "fathom_flow_key",
            FlowKeyRaw,
            [addr_lo, addr_hi, port_lo, port_hi, proto, family, pad]
        );
        layout!(
            rust,
            "fathom_flow_value",
            FlowValueRaw,
            [
                first_seen_ns,
                last_seen_ns,
                packets,
                bytes,
                payload_bytes,
                socket_cookie,
                tcp_flags,
                state,
                ifindex,
                initiator,
                icmp_type,
                icmp_code,
                pad
            ]
        );
        layout!(rust, "fathom_watched_iface", WatchedIfaceRaw, [flags, pad]);
        layout!(
            rust,
            "fathom_sock_event",
            SockEventRaw,
            [
                pid,
                tid,
                family,
                proto,
                failed,
                pad0,
                local_addr,
                remote_addr,
                local_port,
                remote_port,
                srtt_us,
                cgroup_id,
                cookie,
                ts_ns,
                handshake_ns,
                bytes_acked,
                bytes_received,
                retransmits,
                pad1,
                comm
            ]
        );
        layout!(
            rust,
            "fathom_proc_event",
            ProcEventRaw,
            [pid, tid, ppid, cgroup_id, ts_ns, exit_code, pad, comm, filename]
        );
        layout!(
            rust,
            "fathom_sock_owner",
            SockOwnerRaw,
            [pid, tid, cgroup_id, comm]
        );
        layout!(
            rust,
            "fathom_drop_event",
            DropEventRaw,
            [
                reason, ts_ns, location, ifindex, netns, len, suppressed, l3_proto, family, proto,
                sport, dport, saddr, daddr
            ]
        );
        layout!(
            rust,
            "fathom_drop_limit",
            DropLimitRaw,
            [window_start_ns, emitted, suppressed]
        );
        layout!(
            rust,
            "fathom_flow_event",
            FlowEventRaw,
            [end_reason, ts_ns, key, value]
        );
        // `type` is a Rust keyword: spelled r#type on our side.
        for (c, off) in [
            ("fathom_flow_event.type", offset_of!(FlowEventRaw, r#type)),
            ("fathom_sock_event.type", offset_of!(SockEventRaw, r#type)),
            ("fathom_proc_event.type", offset_of!(ProcEventRaw, r#type)),
            ("fathom_drop_event.type", offset_of!(DropEventRaw, r#type)),
        ] {
            rust.insert(c.to_string(), off as u64);
        }
        rust.insert("enum.FATHOM_CNT_MAX".into(), COUNTER_MAX as u64);
        rust.insert("enum.FATHOM_EV_PROC_EXIT".into(), EV_PROC_EXIT as u64);
        rust.insert("enum.FATHOM_EV_DROP".into(), EV_DROP as u64);
        rust.insert("const.FATHOM_FLOW_END_SENT".into(), FLOW_END_SENT as u64);
        rust.insert(
            "const.FATHOM_IFACE_COUNT_EGRESS".into(),
            IFACE_COUNT_EGRESS as u64,
        );

        let c = c_layout();
        assert!(c.len() > 60, "C layout table looks empty: {c:?}");
        assert_eq!(rust, c, "bpf/fathom.h and src/abi.rs disagree");
    }

    #[test]
    fn counters_are_in_enum_order() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }

    #[test]
    fn short_buffers_do_not_decode() {
        assert!(FlowEventRaw::from_bytes(&[0u8; 10]).is_none());
        let ev = FlowEventRaw {
            r#type: EV_FLOW_END,
            end_reason: END_RST,
            ..Default::default()
        };
        assert_eq!(FlowEventRaw::from_bytes(ev.as_bytes()), Some(ev));
    }
}
/// policy.bpf.c's maps and events (bpf/policy.h).
pub mod policy;
