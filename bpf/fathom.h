/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel/user ABI of Fathom: every struct and constant that crosses from a BPF program to
 * user space (ringbuf events, map keys and values) is defined here and nowhere else.
 * crates/fathom-bpf/src/abi.rs mirrors it; its test compiles this header with the host C
 * compiler and checks every size and field offset against the Rust mirror.
 *
 * Rules: fixed-width types only, explicit padding, no bitfields, 8-byte aligned structs.
 */
#ifndef FATHOM_H
#define FATHOM_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define FATHOM_COMM_LEN 16
#define FATHOM_FILENAME_LEN 256

/* Address families as stored in keys and events (values of AF_INET / AF_INET6). */
#define FATHOM_AF_INET 2
#define FATHOM_AF_INET6 10

/* ---- event types (first __u32 of every ringbuf record) ---- */
enum fathom_event_type {
	FATHOM_EV_FLOW_START = 1,
	FATHOM_EV_FLOW_END = 2,
	FATHOM_EV_SOCK_CONNECT = 3, /* TCP active open finished (established or failed) */
	FATHOM_EV_SOCK_ACCEPT = 4,  /* a process accepted a TCP connection */
	FATHOM_EV_SOCK_CLOSE = 5,   /* TCP socket closed: final stats */
	FATHOM_EV_SOCK_TUPLE = 6,   /* a non-TCP socket sent its first datagram to a peer */
	FATHOM_EV_PROC_EXEC = 7,
	FATHOM_EV_PROC_EXIT = 8,
	FATHOM_EV_DROP = 9, /* the kernel freed a packet with a drop reason */
};

/* ---- counters: one per-CPU array per BPF object, indexed by this enum ---- */
enum fathom_counter {
	FATHOM_CNT_PACKETS = 0,       /* packets accounted into a flow */
	FATHOM_CNT_DUP_SKIPPED,       /* egress packets already counted at a watched ingress */
	FATHOM_CNT_NON_IP,            /* ARP, LLDP, … (not an error) */
	FATHOM_CNT_MALFORMED,         /* headers that contradict themselves (bad IHL, lengths) */
	FATHOM_CNT_TRUNCATED,         /* packet shorter than its headers */
	FATHOM_CNT_FRAGMENTS,         /* IP fragments seen */
	FATHOM_CNT_FRAG_UNKNOWN,      /* non-first fragment whose first fragment was not seen */
	FATHOM_CNT_FLOWS_CREATED,
	FATHOM_CNT_FLOW_UPDATE_FAILED, /* could not insert a new flow (should not happen: LRU) */
	FATHOM_CNT_EVENTS_LOST,       /* ringbuf full: an event was not delivered */
	FATHOM_CNT_SOCK_MAP_FULL,     /* per-socket state map refused an insert */
	FATHOM_CNT_TCP_RETRANSMITS,   /* tcp_retransmit_skb hits */
	FATHOM_CNT_EVENTS_SENT,
	FATHOM_CNT_MAX,
};

/* Reasons carried by FATHOM_EV_FLOW_END. */
enum fathom_flow_end {
	FATHOM_END_FIN = 1,
	FATHOM_END_RST = 2,
};

/* flow_value.state bits */
#define FATHOM_FLOW_FIN_LO (1u << 0) /* FIN sent by the lo side */
#define FATHOM_FLOW_FIN_HI (1u << 1) /* FIN sent by the hi side */
#define FATHOM_FLOW_RST (1u << 2)
#define FATHOM_FLOW_END_SENT (1u << 3)

/* watched_iface.flags */
#define FATHOM_IFACE_L2_ETHER (1u << 0) /* frames start with an Ethernet header */
#define FATHOM_IFACE_COUNT_INGRESS (1u << 1)
#define FATHOM_IFACE_COUNT_EGRESS (1u << 2)

/*
 * A flow's canonical key: the two (address, port) pairs ordered so that both directions of a
 * conversation land in one entry. IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d).
 * For ICMP echo both ports hold the echo identifier; for other ICMP they are 0.
 * Ports are in host byte order.
 */
struct fathom_flow_key {
	__u8 addr_lo[16];
	__u8 addr_hi[16];
	__u16 port_lo;
	__u16 port_hi;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

/* Index 0 of the per-direction arrays is lo → hi, index 1 is hi → lo. */
struct fathom_flow_value {
	__u64 first_seen_ns; /* CLOCK_BOOTTIME */
	__u64 last_seen_ns;
	__u64 packets[2];
	__u64 bytes[2];         /* IP packet bytes, headers included */
	__u64 payload_bytes[2]; /* L4 payload bytes */
	__u64 socket_cookie;    /* first local socket seen sending on this flow, 0 if none */
	__u32 tcp_flags[2];     /* OR of TCP flag bytes per direction */
	__u32 state;            /* FATHOM_FLOW_* bits */
	__u32 ifindex;          /* where the first packet was observed */
	__u8 initiator;         /* 0: the lo side opened the flow; 1: the hi side */
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 pad[5];
};

struct fathom_flow_event {
	__u32 type; /* FATHOM_EV_FLOW_START / FATHOM_EV_FLOW_END */
	__u32 end_reason;
	__u64 ts_ns;
	struct fathom_flow_key key;
	struct fathom_flow_value value;
};

/* Interfaces the flow program accounts on, and how (user space fills it before attaching). */
struct fathom_watched_iface {
	__u32 flags;
	__u32 pad;
};

/*
 * Socket-level events. "local"/"remote" are from the point of view of the socket, so for an
 * accepted connection local is the server side.
 */
struct fathom_sock_event {
	__u32 type;
	__u32 pid; /* tgid; 0 when the event did not happen in process context */
	__u32 tid;
	__u8 family;
	__u8 proto;
	__u8 failed; /* SOCK_CONNECT: the handshake did not complete */
	__u8 pad0;
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u16 local_port;
	__u16 remote_port;
	__u32 srtt_us;
	__u64 cgroup_id;
	__u64 cookie;
	__u64 ts_ns;
	__u64 handshake_ns;
	__u64 bytes_acked;
	__u64 bytes_received;
	__u32 retransmits;
	__u32 pad1;
	char comm[FATHOM_COMM_LEN];
};

struct fathom_proc_event {
	__u32 type;
	__u32 pid; /* tgid */
	__u32 tid;
	__u32 ppid;
	__u64 cgroup_id;
	__u64 ts_ns;
	__s32 exit_code;
	__u32 pad;
	char comm[FATHOM_COMM_LEN];
	char filename[FATHOM_FILENAME_LEN];
};

/* Owner of a socket, keyed by socket cookie (proc.bpf.c). */
struct fathom_sock_owner {
	__u32 pid;
	__u32 tid;
	__u64 cgroup_id;
	char comm[FATHOM_COMM_LEN];
};

/*
 * A packet the kernel dropped (skb/kfree_skb with a reason). Events are rate-limited per reason
 * and CPU; `suppressed` carries how many drops of that reason were not reported since the last
 * event. The per-reason counters (drop_counts map) are exact regardless.
 */
struct fathom_drop_event {
	__u32 type;
	__u32 reason;     /* enum skb_drop_reason value; names come from the kernel's BTF */
	__u64 ts_ns;
	__u64 location;   /* kernel address of the freeing call site */
	__u32 ifindex;    /* skb->dev, 0 if none */
	__u32 netns;      /* inode of the device's network namespace, 0 if unknown */
	__u32 len;        /* skb->len */
	__u32 suppressed;
	__u16 l3_proto;   /* ETH_P_* (host order) */
	__u8 family;      /* FATHOM_AF_*, 0 when not IP */
	__u8 proto;
	__u16 sport;
	__u16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* Per-reason, per-CPU rate limiter state (drop.bpf.c). */
struct fathom_drop_limit {
	__u64 window_start_ns;
	__u32 emitted;
	__u32 suppressed;
};

#include "policy.h"
#include "shield.h"
/* Live L7 capture (l7.bpf.c / tls.bpf.c). */
#include "l7.h"

#endif /* FATHOM_H */
