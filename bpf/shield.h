/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP shield's part of the kernel/user ABI (included from fathom.h). Same rules: fixed-width
 * types, explicit padding, 8-byte aligned structs. Mirrored in crates/fathom-bpf/src/abi/shield.rs.
 *
 * Addresses: one LPM trie per list holds both families. IPv4 is stored IPv4-mapped
 * (::ffff:a.b.c.d, prefix length + 96), the same convention as every other Fathom key, so a
 * single lookup serves both families and a v4 prefix can never match a native v6 address.
 */
#ifndef FATHOM_SHIELD_H
#define FATHOM_SHIELD_H

/* Ringbuf record type of a shield verdict event (outside fathom_event_type's dense range so the
 * two enums can grow independently). */
#define FATHOM_EV_SHIELD_DROP 64

/* fathom_shield_config.mode */
#define FATHOM_SHIELD_ENFORCE 0
#define FATHOM_SHIELD_MONITOR 1 /* count and report what would be dropped, pass everything */

/* Why the shield dropped (or, in monitor mode, would have dropped) a packet. Index of the
 * shield_drops per-CPU array. */
enum fathom_shield_reason {
	FATHOM_SHIELD_R_BLOCKLIST = 0,
	FATHOM_SHIELD_R_SYN_RATE,     /* per-source SYN token bucket empty */
	FATHOM_SHIELD_R_PKT_RATE,     /* per-source packet token bucket empty */
	FATHOM_SHIELD_R_IP_HEADER,    /* IPv4 version/IHL invalid, IPv6 version invalid */
	FATHOM_SHIELD_R_IP_LENGTH,    /* IP header or total length beyond the frame, or shorter than the header */
	FATHOM_SHIELD_R_L4_TRUNCATED, /* TCP/UDP/ICMP header cut short (or TCP data offset < 5 / beyond) */
	FATHOM_SHIELD_R_TCP_SYN_FIN,
	FATHOM_SHIELD_R_TCP_SYN_RST,
	FATHOM_SHIELD_R_TCP_NULL,     /* no flag at all */
	FATHOM_SHIELD_R_TCP_XMAS,     /* FIN+PSH+URG */
	FATHOM_SHIELD_R_MAX,
};

/* Per-protocol packet/byte counters: index of the shield_protos per-CPU array. */
enum fathom_shield_proto {
	FATHOM_SHIELD_P_TCP = 0,
	FATHOM_SHIELD_P_UDP,
	FATHOM_SHIELD_P_ICMP,   /* ICMP and ICMPv6 */
	FATHOM_SHIELD_P_OTHER_IP,
	FATHOM_SHIELD_P_NON_IP, /* ARP, LLDP, … always passed */
	FATHOM_SHIELD_P_MAX,
};

/* Verdict totals: index of the shield_stats per-CPU array. */
enum fathom_shield_stat {
	FATHOM_SHIELD_S_PASSED = 0,
	FATHOM_SHIELD_S_DROPPED,      /* enforce mode drops */
	FATHOM_SHIELD_S_MONITORED,    /* monitor mode: would have been dropped, passed */
	FATHOM_SHIELD_S_ALLOWLISTED,  /* matched the allowlist: passed without any other check */
	FATHOM_SHIELD_S_BLOCK_EXPIRED,/* matched an expired blocklist entry (passed; user space reaps it) */
	FATHOM_SHIELD_S_EVENTS_SENT,
	FATHOM_SHIELD_S_EVENTS_SUPPRESSED, /* over the event rate: counted, not sent */
	FATHOM_SHIELD_S_EVENTS_LOST,  /* ringbuf full */
	FATHOM_SHIELD_S_BUCKETS_FULL, /* could not insert a token bucket (LRU: should not happen) */
	FATHOM_SHIELD_S_MAX,
};

/* Key of the blocklist and allowlist LPM tries. */
struct fathom_shield_lpm_key {
	__u32 prefixlen; /* over addr: IPv4 prefixes are stored as 96 + len */
	__u8 addr[16];
};

/* Blocklist value. */
struct fathom_shield_block {
	__u64 expires_ns; /* CLOCK_BOOTTIME; 0: never. Expired entries pass and are reaped by user space */
	__u64 added_ns;   /* CLOCK_BOOTTIME when user space added it */
	__u32 origin;     /* 0: operator (CLI/API), 1: detector (automatic response) */
	__u32 pad;
};

/* Why a CIDR is blocked (UTF-8, NUL-padded): user space only, but pinned next to the blocklist
 * so that a restarted agent still knows. Never read by the program. */
#define FATHOM_SHIELD_NOTE_LEN 120
struct fathom_shield_note {
	__u8 text[FATHOM_SHIELD_NOTE_LEN];
};

/* Allowlist value (presence is what matters). */
struct fathom_shield_allow {
	__u32 flags;
	__u32 pad;
};

/* The one entry of the shield_config array. Rates are per second per source address; a rate of
 * 0 disables that limit. Bursts are bucket capacities in packets (≤ 1e9: tokens are kept in
 * nano-tokens so refill is exact integer math). */
struct fathom_shield_config {
	__u32 mode;            /* FATHOM_SHIELD_ENFORCE / FATHOM_SHIELD_MONITOR */
	__u32 events_per_sec;  /* drop events per CPU per second; 0: no events */
	__u64 syn_rate;
	__u64 syn_burst;
	__u64 pkt_rate;
	__u64 pkt_burst;
	__u64 clock_ns;        /* tests only: when non-zero, the shield's clock (instead of boot time) */
};

/* Per-source token buckets (LRU hash keyed by the 16-byte source address). */
struct fathom_shield_bucket {
	__u64 last_ns;
	__u64 syn_tokens; /* nano-tokens: 1e9 per packet */
	__u64 pkt_tokens;
};

/* A packet the shield dropped or would have dropped (monitor). Rate-limited per CPU; `suppressed`
 * carries how many were not reported since the previous event on that CPU. */
struct fathom_shield_event {
	__u32 type;     /* FATHOM_EV_SHIELD_DROP */
	__u32 reason;   /* enum fathom_shield_reason */
	__u64 ts_ns;
	__u32 ifindex;
	__u32 suppressed;
	__u32 len;      /* frame bytes */
	__u8 family;    /* FATHOM_AF_* */
	__u8 proto;
	__u8 tcp_flags;
	__u8 monitor;   /* 1: passed because of monitor mode */
	__u16 sport;
	__u16 dport;
	__u32 pad;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* Per-CPU event rate limiter (one entry). */
struct fathom_shield_event_limit {
	__u64 window_start_ns;
	__u32 emitted;
	__u32 suppressed;
};

#endif /* FATHOM_SHIELD_H */
