/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Kernel/user ABI of the live L7 capture (l7.bpf.c, syscall tracepoints): socket payload
 * events. Included from fathom.h; mirrored in crates/fathom-bpf/src/abi/l7.rs with a layout
 * test. The event types and counters live in their own ranges so that they never collide
 * with the ones in fathom.h.
 */
#ifndef FATHOM_L7_H
#define FATHOM_L7_H

/* Payload bytes an event can carry at most (the configured cap is clamped to this). */
#define FATHOM_L7_MAX_DATA 8192
/* Default bytes copied per syscall. */
#define FATHOM_L7_DEFAULT_CAP 4096
/* iovecs looked at per readv/writev/sendmsg/recvmsg call. */
#define FATHOM_L7_MAX_IOV 32

enum fathom_l7_event_type {
	FATHOM_EV_L7_DATA = 40,  /* payload moved by one syscall on a socket */
	FATHOM_EV_L7_CLOSE = 41, /* a socket that shipped data was closed */
};

/* The in-kernel protocol guess (first bytes of a connection). */
enum fathom_l7_proto {
	FATHOM_L7_PROTO_UNKNOWN = 0,
	FATHOM_L7_PROTO_HTTP = 1,
	FATHOM_L7_PROTO_HTTP2 = 2,
	FATHOM_L7_PROTO_TLS = 3,
	FATHOM_L7_PROTO_DNS = 4,
	FATHOM_L7_PROTO_REDIS = 5,
	FATHOM_L7_PROTO_KAFKA = 6,
	FATHOM_L7_PROTO_POSTGRES = 7,
	FATHOM_L7_PROTO_MYSQL = 8,
};

/* fathom_l7_event.direction */
#define FATHOM_L7_EGRESS 0  /* the process wrote/sent */
#define FATHOM_L7_INGRESS 1 /* the process read/received */

/* fathom_l7_event.role: who opened the connection, as far as the kernel saw. */
#define FATHOM_L7_ROLE_UNKNOWN 0
#define FATHOM_L7_ROLE_CLIENT 1 /* connect() on this socket */
#define FATHOM_L7_ROLE_SERVER 2 /* returned by accept() */

/* fathom_l7_event.flags */
#define FATHOM_L7_F_TRUNCATED (1u << 0) /* the call moved more bytes than were copied */
#define FATHOM_L7_F_TLS (1u << 1)       /* plaintext from TLS library uprobes */

/* Attach cookie of the libssl uprobes (tls.bpf.c): which function the probe is on. */
#define FATHOM_TLS_COOKIE_READ (1u << 0) /* SSL_read / SSL_read_ex (else a write) */
#define FATHOM_TLS_COOKIE_EX (1u << 1)   /* the _ex form: length through a size_t * */

/* Per-CPU counters of l7.bpf.c (map l7_counters), indexed by this enum. */
enum fathom_l7_counter {
	FATHOM_L7_CNT_EVENTS_SENT = 0,
	FATHOM_L7_CNT_EVENTS_LOST,    /* ringbuf full */
	FATHOM_L7_CNT_TRUNCATED,      /* events carrying fewer bytes than the call moved */
	FATHOM_L7_CNT_CONNS_KNOWN,    /* sockets whose protocol was recognised */
	FATHOM_L7_CNT_CONNS_MUTED,    /* sockets declared unknown: never shipped */
	FATHOM_L7_CNT_CALLS_MUTED,    /* syscalls on muted sockets (cost: one lookup each) */
	FATHOM_L7_CNT_BYTES_SHIPPED,  /* payload bytes put on the ringbuf */
	FATHOM_L7_CNT_MAP_FULL,       /* state map refused an insert */
	FATHOM_L7_CNT_PEER_LOCAL,     /* accepted sockets whose client is on this node: not shipped */
	FATHOM_L7_CNT_TLS_EVENTS,     /* TLS plaintext events shipped (uprobes) */
	FATHOM_L7_CNT_TLS_NO_FD,      /* TLS plaintext of a call whose socket was never seen: dropped */
	FATHOM_L7_CNT_MAX,
};

/*
 * One syscall's payload on an IPv4/IPv6 TCP or UDP socket, followed by `data_len` bytes.
 * Records are variable-sized: header + data_len, 8-byte aligned by the ringbuf.
 * local/remote are from the socket's point of view; for unconnected UDP the remote is the
 * call's own peer address.
 */
struct fathom_l7_event {
	__u32 type;
	__u32 pid; /* tgid */
	__u32 tid;
	__s32 fd;
	__u64 ts_ns; /* CLOCK_BOOTTIME, at syscall exit */
	__u64 cookie;
	__u64 cgroup_id;
	__s64 ret;      /* the syscall's real return value (bytes moved) */
	__u32 data_len; /* bytes that follow */
	__u8 direction; /* FATHOM_L7_EGRESS / INGRESS */
	__u8 protocol;  /* enum fathom_l7_proto */
	__u8 role;      /* FATHOM_L7_ROLE_* */
	__u8 flags;     /* FATHOM_L7_F_* */
	__u8 family;
	__u8 l4proto;
	__u16 local_port;
	__u16 remote_port;
	__u16 pad;
	__u8 local_addr[16];
	__u8 remote_addr[16];
	char comm[16];
};

#endif /* FATHOM_L7_H */
