/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ABI of policy.bpf.c (identity-aware network policy at TC). Included from fathom.h; mirrored in
 * crates/fathom-bpf/src/abi/policy.rs and checked by csrc/policy_abi_layout.c.
 *
 * Two generations ("slots") of the policy and ipcache maps exist; policy_state[0].generation
 * says which one packets use (slot = generation & 1). User space fills the standby slot, then
 * bumps the generation with one 4-byte write, so a packet sees either the whole old or the
 * whole new policy, never a mix (see policy.bpf.c for why this and not map-in-map).
 */
#ifndef FATHOM_POLICY_H
#define FATHOM_POLICY_H

#define FATHOM_EV_POLICY_VERDICT 64

/* fathom_policy_value.action */
#define FATHOM_POLICY_ALLOW 1
#define FATHOM_POLICY_DENY 2
#define FATHOM_POLICY_AUDIT 3

/* fathom_policy_key.direction: the endpoint's (pod's) point of view */
#define FATHOM_POLICY_INGRESS 0
#define FATHOM_POLICY_EGRESS 1

/* fathom_policy_event.verdict */
#define FATHOM_VERDICT_FORWARDED 1
#define FATHOM_VERDICT_DROPPED 2
#define FATHOM_VERDICT_AUDIT 3

/* fathom_policy_ct_value.flags */
#define FATHOM_POLICY_CT_EVENT_SENT (1u << 0)

/* Hash key (exact match; the layout keeps the LPM-style prefixlen so that one key names one L4
 * prefix). endpoint, peer and direction always match; the L4 part is probed at four lengths
 * only, so the cost per packet is a fixed number of hash lookups whatever the rule count:
 *   72 = any protocol (the root), 80 = one protocol, 88 = protocol + dport & 0xff00 (a block
 *   of 256 ports, or an ICMP type with any code), 96 = protocol + exact dport (ICMP type+code).
 * Bits beyond prefixlen are zero. The compiler expands other port prefixes into these. */
#define FATHOM_POLICY_KEY_ROOT 72
#define FATHOM_POLICY_KEY_PROTO 80
#define FATHOM_POLICY_KEY_BLOCK 88
#define FATHOM_POLICY_KEY_EXACT 96
struct fathom_policy_key {
	__u32 prefixlen;
	__u32 endpoint_id;
	__u32 peer_identity; /* 0 = any peer */
	__u8 direction;
	__u8 protocol;
	__be16 dport;
};

/* fathom_policy_value.levels (root entries only): which longer keys exist for this
 * (endpoint, peer, direction), so the program probes only those. */
#define FATHOM_POLICY_LEVEL_PROTO (1u << 0)
#define FATHOM_POLICY_LEVEL_BLOCK (1u << 1)
#define FATHOM_POLICY_LEVEL_EXACT (1u << 2)

struct fathom_policy_value {
	__u8 action;
	__u8 levels;
	__u8 pad[2];
	__u32 decision_id; /* index into user space's decision table of that generation; 0 at a
			    * root: the endpoint is not selected in this direction (allow) */
};

/* LPM trie; IPv4 stored as ::ffff:a.b.c.d with prefixlen 96+n. */
struct fathom_ipcache_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* policy_ipcache_exact{0,1} (hash, key = the 16-byte address, IPv4 as ::ffff:a.b.c.d): the
 * /32 and /128 entries of the ipcache, looked up before the LPM trie, which holds the rest. */
struct fathom_ipcache_value {
	__u32 identity;
	__u32 pad;
};

/* policy_endpoints: ifindex of the host-side interface -> endpoint. */
struct fathom_policy_endpoint {
	__u32 endpoint_id;
	__u32 flags; /* reserved, 0 */
};

/* policy_endpoint_slots[ifindex & (entries - 1)] (array, entries a power of two): the
 * endpoint of the interface whose slot it is; an interface whose slot is taken by another one
 * is in policy_endpoints instead. ifindex 0: an empty slot. */
struct fathom_policy_endpoint_slot {
	__u32 ifindex;
	__u32 endpoint_id;
};

/* policy_state[0]: the generation packets use; slot = generation & 1. */
struct fathom_policy_state {
	__u32 generation;
	__u32 pad;
};

/* Conntrack key: the connection's first packet as seen at one endpoint. */
struct fathom_policy_ct_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 endpoint_id;
	__u16 sport;     /* host order; ICMP echo: identifier in both ports */
	__u16 dport;
	__u8 proto;
	__u8 direction;  /* FATHOM_POLICY_INGRESS/EGRESS of the first packet */
	__u8 pad[2];
};

struct fathom_policy_ct_value {
	__u32 generation;  /* the verdict below holds for this generation only */
	__u32 decision_id; /* 0: the endpoint was not selected in that direction */
	__u32 peer_identity;
	__u16 key_bits;    /* dport, or ICMP type<<8|code, of the first packet */
	__u8 action;       /* FATHOM_POLICY_*; allow when not selected */
	__u8 flags;
};

/* Per-decision packet/byte counters: policy_counters (per-CPU array) at
 * slot * (entries / 2) + decision_id. */
struct fathom_policy_counter {
	__u64 packets;
	__u64 bytes;
};

/* One per connection and generation (rate-limited through the conntrack). */
struct fathom_policy_event {
	__u32 type; /* FATHOM_EV_POLICY_VERDICT */
	__u32 ifindex;
	__u64 ts_ns;
	__u32 endpoint_id;
	__u32 peer_identity;
	__u32 decision_id; /* 0: endpoint not selected in this direction */
	__u32 generation;
	__u8 verdict;      /* FATHOM_VERDICT_* */
	__u8 action;       /* FATHOM_POLICY_* of the entry (0 when not selected) */
	__u8 direction;
	__u8 family;
	__u8 proto;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 pad;
	__u16 sport;
	__u16 dport;
	__u32 len;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* Program counters (per-CPU array). */
enum fathom_policy_counter_idx {
	FATHOM_POL_PACKETS = 0,   /* packets of managed endpoints */
	FATHOM_POL_UNMANAGED,     /* interface not in policy_endpoints: passed untouched */
	FATHOM_POL_NON_IP,        /* ARP etc.: passed */
	FATHOM_POL_MALFORMED,     /* bad or truncated IP/L4 headers: dropped */
	FATHOM_POL_FRAG_PASSED,   /* non-first fragments: passed (the first one was checked) */
	FATHOM_POL_ND_PASSED,     /* IPv6 neighbour/router discovery: always passed */
	FATHOM_POL_CT_NEW,        /* connections checked against the policy */
	FATHOM_POL_CT_ESTABLISHED,/* packets matched to a known connection, same direction */
	FATHOM_POL_CT_REPLY,      /* replies of allowed connections */
	FATHOM_POL_FORWARDED,
	FATHOM_POL_DROPPED,
	FATHOM_POL_AUDITED,
	FATHOM_POL_EVENTS_SENT,
	FATHOM_POL_EVENTS_LOST,
	FATHOM_POL_CNT_MAX,
};

#endif /* FATHOM_POLICY_H */
