//! The kernel map layouts the compiler produces, byte for byte.
//!
//! The C definitions are in `bpf/policy.h` (mirrored again, layout-tested, in
//! `fathom_bpf::abi::policy`):
//!
//! ```c
//! /* BPF_MAP_TYPE_HASH (exact match). prefixlen names the L4 level: 72 root (any traffic),
//!  * 80 one protocol, 88 protocol + dport & 0xff00 (256-port block; ICMP type, any code),
//!  * 96 protocol + exact dport (ICMP type<<8|code). Bits beyond prefixlen are zero.
//!  * peer_identity 0 = any peer (wildcard). */
//! struct fathom_policy_key {
//!     __u32 prefixlen;
//!     __u32 endpoint_id;    /* host byte order */
//!     __u32 peer_identity;  /* host byte order */
//!     __u8  direction;      /* 0 ingress, 1 egress */
//!     __u8  protocol;       /* IPPROTO_* */
//!     __be16 dport;         /* network byte order */
//! };
//! struct fathom_policy_value {
//!     __u8  action;         /* 1 allow, 2 deny, 3 audit (allow + report) */
//!     __u8  levels;         /* root entries: LEVEL_* of the longer keys that exist */
//!     __u8  pad[2];
//!     __u32 decision_id;    /* user space maps it to the verdict; 0 at a root: not selected */
//! };
//! /* BPF_MAP_TYPE_LPM_TRIE. IPv4 is stored IPv4-mapped (::ffff:a.b.c.d), prefixlen 96+n.
//!  * The loader moves full-length entries (prefixlen 128) into an exact hash keyed by addr. */
//! struct fathom_ipcache_key {
//!     __u32 prefixlen;
//!     __u8  addr[16];
//! };
//! struct fathom_ipcache_value {
//!     __u32 identity;
//!     __u32 pad;
//! };
//! ```
//!
//! Lookup, per direction (egress at the source endpoint, ingress at the destination):
//! `peer = ipcache(peer address)`; `root = policy(ep, peer, dir, root)`, on a miss
//! `root = policy(ep, 0, dir, root)`, on a miss allow (no policy selects the endpoint in that
//! direction; decision 0). Then, for the levels `root.levels` names, longest first: exact
//! port, port block, protocol; the first hit is the verdict, no hit leaves the root's. The
//! compiler resolves every overlap (deny wins, audit, default deny, wildcard vs identity)
//! into the entries, so the longest hit is final.

use std::net::IpAddr;

use ipnet::IpNet;

/// Bits of the policy key data that are always matched: endpoint, peer, direction.
pub const POLICY_KEY_FIXED_BITS: u32 = 72;
/// Bits of protocol + dport.
pub const POLICY_KEY_L4_BITS: u32 = 24;

pub const DIRECTION_INGRESS: u8 = 0;
pub const DIRECTION_EGRESS: u8 = 1;

/// `levels` of a root entry: which longer keys exist for its (endpoint, peer, direction).
pub const LEVEL_PROTO: u8 = 1 << 0;
pub const LEVEL_BLOCK: u8 = 1 << 1;
pub const LEVEL_EXACT: u8 = 1 << 2;

pub const ACTION_ALLOW: u8 = 1;
pub const ACTION_DENY: u8 = 2;
pub const ACTION_AUDIT: u8 = 3;

/// Mirror of `struct fathom_policy_key` (16 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyMapKey {
    pub prefixlen: u32,
    pub endpoint_id: u32,
    pub peer_identity: u32,
    pub direction: u8,
    pub protocol: u8,
    /// Network byte order.
    pub dport: [u8; 2],
}

impl PolicyMapKey {
    /// The bytes to hand to `bpf_map_update_elem`.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&self.prefixlen.to_ne_bytes());
        b[4..8].copy_from_slice(&self.endpoint_id.to_ne_bytes());
        b[8..12].copy_from_slice(&self.peer_identity.to_ne_bytes());
        b[12] = self.direction;
        b[13] = self.protocol;
        b[14..16].copy_from_slice(&self.dport);
        b
    }
}

/// Mirror of `struct fathom_policy_value` (8 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyMapValue {
    pub action: u8,
    /// Root entries only: `LEVEL_*` bits.
    pub levels: u8,
    pub pad: [u8; 2],
    pub decision_id: u32,
}

impl PolicyMapValue {
    pub fn to_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.action;
        b[1] = self.levels;
        b[4..8].copy_from_slice(&self.decision_id.to_ne_bytes());
        b
    }
}

/// Mirror of `struct fathom_ipcache_key` (20 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpcacheMapKey {
    pub prefixlen: u32,
    pub addr: [u8; 16],
}

impl IpcacheMapKey {
    pub fn from_net(net: IpNet) -> Self {
        match net.addr() {
            IpAddr::V4(a) => Self {
                prefixlen: 96 + u32::from(net.prefix_len()),
                addr: a.to_ipv6_mapped().octets(),
            },
            IpAddr::V6(a) => Self {
                prefixlen: u32::from(net.prefix_len()),
                addr: a.octets(),
            },
        }
    }

    pub fn to_bytes(&self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[0..4].copy_from_slice(&self.prefixlen.to_ne_bytes());
        b[4..20].copy_from_slice(&self.addr);
        b
    }
}

/// Mirror of `struct fathom_ipcache_value` (8 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpcacheMapValue {
    pub identity: u32,
    pub pad: u32,
}

impl IpcacheMapValue {
    pub fn to_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0..4].copy_from_slice(&self.identity.to_ne_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    #[test]
    fn layouts_match_the_c_structs() {
        assert_eq!(size_of::<PolicyMapKey>(), 16);
        assert_eq!(offset_of!(PolicyMapKey, endpoint_id), 4);
        assert_eq!(offset_of!(PolicyMapKey, peer_identity), 8);
        assert_eq!(offset_of!(PolicyMapKey, direction), 12);
        assert_eq!(offset_of!(PolicyMapKey, protocol), 13);
        assert_eq!(offset_of!(PolicyMapKey, dport), 14);
        assert_eq!(size_of::<PolicyMapValue>(), 8);
        assert_eq!(offset_of!(PolicyMapValue, levels), 1);
        assert_eq!(offset_of!(PolicyMapValue, decision_id), 4);
        assert_eq!(size_of::<IpcacheMapKey>(), 20);
        assert_eq!(align_of::<IpcacheMapKey>(), 4);
        assert_eq!(size_of::<IpcacheMapValue>(), 8);
    }

    #[test]
    fn ipv4_is_mapped() {
        let k = IpcacheMapKey::from_net("10.0.0.0/8".parse().expect("net"));
        assert_eq!(k.prefixlen, 104);
        assert_eq!(&k.addr[10..13], &[0xff, 0xff, 10]);
        let b = k.to_bytes();
        assert_eq!(&b[0..4], &104u32.to_ne_bytes());
    }

    #[test]
    fn dport_is_big_endian() {
        let k = PolicyMapKey {
            prefixlen: 96,
            endpoint_id: 7,
            peer_identity: 256,
            direction: DIRECTION_EGRESS,
            protocol: 6,
            dport: 8080u16.to_be_bytes(),
        };
        assert_eq!(&k.to_bytes()[14..16], &[0x1f, 0x90]);
    }
}
