//! Mirror of `bpf/policy.h` (policy.bpf.c's maps and verdict events). The layout test checks
//! every size and offset against the C compiler's view (csrc/policy_abi_layout.c).

use super::Pod;

pub const EV_POLICY_VERDICT: u32 = 64;

pub const POLICY_ALLOW: u8 = 1;
pub const POLICY_DENY: u8 = 2;
pub const POLICY_AUDIT: u8 = 3;

/// `fathom_policy_key.prefixlen` of the four levels the program probes.
pub const POLICY_KEY_ROOT: u32 = 72;
pub const POLICY_KEY_PROTO: u32 = 80;
pub const POLICY_KEY_BLOCK: u32 = 88;
pub const POLICY_KEY_EXACT: u32 = 96;
/// `fathom_policy_value.levels`.
pub const POLICY_LEVEL_PROTO: u8 = 1 << 0;
pub const POLICY_LEVEL_BLOCK: u8 = 1 << 1;
pub const POLICY_LEVEL_EXACT: u8 = 1 << 2;

pub const POLICY_INGRESS: u8 = 0;
pub const POLICY_EGRESS: u8 = 1;

pub const VERDICT_FORWARDED: u8 = 1;
pub const VERDICT_DROPPED: u8 = 2;
pub const VERDICT_AUDIT: u8 = 3;

/// `enum fathom_policy_counter_idx`, in order.
pub const POLICY_STAT_NAMES: [&str; 14] = [
    "packets",
    "unmanaged",
    "non_ip",
    "malformed",
    "frag_passed",
    "nd_passed",
    "ct_new",
    "ct_established",
    "ct_reply",
    "forwarded",
    "dropped",
    "audited",
    "events_sent",
    "events_lost",
];
pub const POLICY_STAT_MAX: usize = POLICY_STAT_NAMES.len();

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyKeyRaw {
    pub prefixlen: u32,
    pub endpoint_id: u32,
    pub peer_identity: u32,
    pub direction: u8,
    pub protocol: u8,
    /// Network byte order.
    pub dport: [u8; 2],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyValueRaw {
    pub action: u8,
    /// Root entries: `POLICY_LEVEL_*` of the longer keys that exist.
    pub levels: u8,
    pub pad: [u8; 2],
    pub decision_id: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IpcacheKeyRaw {
    pub prefixlen: u32,
    pub addr: [u8; 16],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IpcacheValueRaw {
    pub identity: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyEndpointRaw {
    pub endpoint_id: u32,
    pub flags: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyEndpointSlotRaw {
    /// 0: an empty slot.
    pub ifindex: u32,
    pub endpoint_id: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyStateRaw {
    pub generation: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyCtKeyRaw {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub endpoint_id: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub direction: u8,
    pub pad: [u8; 2],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyCtValueRaw {
    pub generation: u32,
    pub decision_id: u32,
    pub peer_identity: u32,
    pub key_bits: u16,
    pub action: u8,
    pub flags: u8,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyCounterRaw {
    pub packets: u64,
    pub bytes: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyEventRaw {
    pub r#type: u32,
    pub ifindex: u32,
    pub ts_ns: u64,
    pub endpoint_id: u32,
    pub peer_identity: u32,
    pub decision_id: u32,
    pub generation: u32,
    pub verdict: u8,
    pub action: u8,
    pub direction: u8,
    pub family: u8,
    pub proto: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub pad: u8,
    pub sport: u16,
    pub dport: u16,
    pub len: u32,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

// SAFETY: repr(C), integers and integer arrays only, padding spelled out.
unsafe impl Pod for PolicyKeyRaw {}
unsafe impl Pod for PolicyValueRaw {}
unsafe impl Pod for IpcacheKeyRaw {}
unsafe impl Pod for IpcacheValueRaw {}
unsafe impl Pod for PolicyEndpointRaw {}
unsafe impl Pod for PolicyEndpointSlotRaw {}
unsafe impl Pod for PolicyStateRaw {}
unsafe impl Pod for PolicyCtKeyRaw {}
unsafe impl Pod for PolicyCtValueRaw {}
unsafe impl Pod for PolicyCounterRaw {}
unsafe impl Pod for PolicyEventRaw {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::abi::layout::{c_table, layout, LayoutEntry};
    use std::mem::offset_of;

    extern "C" {
        static fathom_policy_abi_layout: [LayoutEntry; 0];
    }

    fn c_layout() -> BTreeMap<String, u64> {
        // SAFETY: the C table is a static array terminated by a NULL name.
        unsafe { c_table(fathom_policy_abi_layout.as_ptr()) }
    }

    #[test]
    fn policy_layout_matches_c() {
        let mut rust = BTreeMap::new();
        layout!(
            rust,
            "fathom_policy_key",
            PolicyKeyRaw,
            [
                prefixlen,
                endpoint_id,
                peer_identity,
                direction,
                protocol,
                dport
            ]
        );
        layout!(
            rust,
            "fathom_policy_value",
            PolicyValueRaw,
            [action, levels, pad, decision_id]
        );
        layout!(rust, "fathom_ipcache_key", IpcacheKeyRaw, [prefixlen, addr]);
        layout!(
            rust,
            "fathom_ipcache_value",
            IpcacheValueRaw,
            [identity, pad]
        );
        layout!(
            rust,
            "fathom_policy_endpoint",
            PolicyEndpointRaw,
            [endpoint_id, flags]
        );
        layout!(
            rust,
            "fathom_policy_endpoint_slot",
            PolicyEndpointSlotRaw,
            [ifindex, endpoint_id]
        );
        layout!(
            rust,
            "fathom_policy_state",
            PolicyStateRaw,
            [generation, pad]
        );
        layout!(
            rust,
            "fathom_policy_ct_key",
            PolicyCtKeyRaw,
            [
                saddr,
                daddr,
                endpoint_id,
                sport,
                dport,
                proto,
                direction,
                pad
            ]
        );
        layout!(
            rust,
            "fathom_policy_ct_value",
            PolicyCtValueRaw,
            [
                generation,
                decision_id,
                peer_identity,
                key_bits,
                action,
                flags
            ]
        );
        layout!(
            rust,
            "fathom_policy_counter",
            PolicyCounterRaw,
            [packets, bytes]
        );
        layout!(
            rust,
            "fathom_policy_event",
            PolicyEventRaw,
            [
                ifindex,
                ts_ns,
                endpoint_id,
                peer_identity,
                decision_id,
                generation,
                verdict,
                action,
                direction,
                family,
                proto,
                icmp_type,
                icmp_code,
                pad,
                sport,
                dport,
                len,
                saddr,
                daddr
            ]
        );
        rust.insert(
            "fathom_policy_event.type".into(),
            offset_of!(PolicyEventRaw, r#type) as u64,
        );
        rust.insert("enum.FATHOM_POL_CNT_MAX".into(), POLICY_STAT_MAX as u64);
        rust.insert(
            "const.FATHOM_EV_POLICY_VERDICT".into(),
            u64::from(EV_POLICY_VERDICT),
        );
        assert_eq!(
            rust,
            c_layout(),
            "bpf/policy.h and src/abi/policy.rs disagree"
        );
    }
}
