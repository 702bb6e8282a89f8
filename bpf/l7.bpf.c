// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l7: socket payload of every process, from syscall tracepoints, for the user-space L7 engine.
 *
 * - sys_enter_{read,write,readv,writev,sendto,recvfrom,sendmsg,recvmsg,sendmmsg,recvmmsg}: is the fd an
 *   IPv4/IPv6 TCP/UDP socket worth looking at? If so the call's buffer pointers are saved per
 *   thread (the payload is only complete at exit for reads).
 * - sys_exit_*: copy at most `capture_bytes` (default 4 KiB) of what the call really moved,
 *   iovecs through a bounded loop, and ship it with pid, tid, fd, direction, tuple, socket
 *   cookie, the real return value and a truncation flag.
 * - connect/accept/accept4 mark the socket's role (client/server); close forgets the fd.
 *
 * Cost control: per (tgid, fd) state lives in an LRU map. Non-sockets are remembered as such
 * (one lookup per later call). The first bytes of a TCP connection are classified here,
 * mirroring crates/fathom-l7/src/infer.rs; a connection of no known protocol is muted: its
 * later calls cost one map lookup and never an event. UDP is shipped only to/from DNS ports.
 *
 * Records are variable-sized (header + copied bytes) and written with bpf_ringbuf_output from
 * a per-CPU scratch buffer: a fixed-size reserve of header + cap would make every small DNS or
 * Redis message take 4 KiB of ring; the extra copy is at most the cap and only on shipped
 * calls. Loss (ring full) and truncation are counted in per-CPU counters.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include "fathom.h"
#include "common.h"

#define AF_INET 2
#define AF_INET6 10
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define EINPROGRESS 115

/* Configured by user space before load. */
const volatile __u32 capture_bytes = FATHOM_L7_DEFAULT_CAP;
const volatile __u32 self_tgid = 0;
/* TLS connections are shipped up to this many bytes (the handshake), then muted. */
const volatile __u32 tls_handshake_bytes = 16384;
/* The reader is woken when this many bytes wait in the ring (see ring_flags). */
const volatile __u32 wakeup_bytes = 1 << 20;

enum conn_state {
	ST_NOT_SOCKET = 1, /* a file, pipe, unix socket…: ignored until closed */
	ST_PENDING = 2,    /* inet socket, protocol not decided yet */
	ST_ACTIVE = 3,     /* known protocol: shipped */
	ST_MUTED = 4,      /* unknown protocol: never shipped */
	ST_UDP = 5,        /* UDP: decided per call by port */
};

/* Calls on a pending connection that carried too few bytes to decide, before giving up. */
#define MAX_PENDING_CALLS 8

struct conn_key {
	__u32 tgid;
	__s32 fd;
};

struct conn {
	__u64 sk; /* struct sock *, to read the tuple and cookie at each shipped call */
	__u64 bytes;
	__u8 state;
	__u8 protocol;
	__u8 role;
	__u8 family;
	__u8 l4proto;
	__u8 pending_calls;
	__u8 tls_proto; /* guess on the TLS plaintext (tls.bpf.c); 0 until decided */
	__u8 flags;     /* CONN_F_* */
};

#define CONN_F_TLS_COVERED (1 << 0) /* seen inside SSL_read/SSL_write: ciphertext never shipped */
#define CONN_F_PEER_LOCAL (1 << 1)  /* server end of a client on this node: nothing shipped */
#define CONN_F_TLS_MUTED (1 << 2)   /* TLS plaintext of no known protocol: never shipped */

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, struct conn);
} l7_conns SEC(".maps");

enum call_kind {
	CALL_BUF = 1, /* one buffer */
	CALL_IOV = 2, /* an iovec array */
	CALL_MMSG = 3, /* sendmmsg/recvmmsg: the first message of the vector */
};

/* A syscall in flight on a watched socket, in its thread's task storage; kind 0: none. */
struct call_args {
	__u64 buf; /* CALL_BUF: buffer; CALL_IOV: struct iovec array */
	__u64 addr; /* user sockaddr of the peer (UDP sendto/recvfrom/msg_name), 0 if none */
	__u32 iovcnt;
	__s32 fd;
	__u8 kind;
	__u8 direction;
	__u8 pad[6];
};

/*
 * Task storage, not a hash by pid_tgid: every syscall exit of every thread looks here, and a
 * task storage lookup is a few loads from the task where a hash lookup hashes and walks.
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct call_args);
} l7_calls SEC(".maps");

/* Header + room for two maximal copies, so that the verifier can bound offset + length. */
struct scratch {
	struct fathom_l7_event ev;
	__u8 data[2 * FATHOM_L7_MAX_DATA];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} l7_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} l7_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FATHOM_L7_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} l7_counters SEC(".maps");

/*
 * Events are written without waking the reader, which polls the ring on a short timer, unless
 * a batch of wakeup_bytes is waiting: a wakeup per event (the default) costs an irq_work and
 * two context switches per event on a busy node, far more than the event itself.
 */
static __always_inline __u64 ring_flags(void)
{
	return bpf_ringbuf_query(&l7_events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ?
		       BPF_RB_FORCE_WAKEUP :
		       BPF_RB_NO_WAKEUP;
}

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&l7_counters, &idx);
	if (c)
		*c += n;
}

/* fd of the calling task → its struct file, through the task's fd table. */
static __always_inline struct file *fd_file(__s32 fd)
{
	if (fd < 0)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || (__u32)fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/*
 * Look up (tgid, fd); on a miss, classify the fd and remember the answer. Returns the state,
 * or 0 when nothing could be recorded.
 */
static __always_inline struct conn *conn_for(__u32 tgid, __s32 fd)
{
	struct conn_key k = { .tgid = tgid, .fd = fd };
	struct conn *c = bpf_map_lookup_elem(&l7_conns, &k);
	if (c)
		return c;

	struct conn n = {};
	n.state = ST_NOT_SOCKET;
	struct file *f = fd_file(fd);
	if (f) {
		__u16 mode = BPF_CORE_READ(f, f_inode, i_mode);
		if ((mode & S_IFMT) == S_IFSOCK) {
			struct socket *sock = BPF_CORE_READ(f, private_data);
			struct sock *sk = sock ? BPF_CORE_READ(sock, sk) : 0;
			if (sk) {
				__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
				__u16 proto = BPF_CORE_READ(sk, sk_protocol);
				if ((family == AF_INET || family == AF_INET6) &&
				    (proto == IPPROTO_TCP || proto == IPPROTO_UDP)) {
					n.sk = (__u64)sk;
					n.family = family;
					n.l4proto = proto;
					n.state = proto == IPPROTO_UDP ? ST_UDP : ST_PENDING;
				}
			}
		}
	}
	if (bpf_map_update_elem(&l7_conns, &k, &n, BPF_NOEXIST) && bpf_map_lookup_elem(&l7_conns, &k) == 0) {
		count(FATHOM_L7_CNT_MAP_FULL, 1);
		return 0;
	}
	return bpf_map_lookup_elem(&l7_conns, &k);
}

/* tls.bpf.c (included at the end): the TLS library calls in flight, and where they wrote. */
static __always_inline int tls_note_fd(__u64 id, __s32 fd, struct conn *c);

static __always_inline int enter(__s32 fd, __u64 buf, __u32 iovcnt, __u64 addr, __u8 kind,
				 __u8 direction)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if (tgid == self_tgid)
		return 0;
	struct conn *c = conn_for(tgid, fd);
	if (!c || c->state == ST_NOT_SOCKET)
		return 0;
	if (tls_note_fd(id, fd, c) || (c->flags & CONN_F_TLS_COVERED))
		return 0;
	if (c->state == ST_MUTED) {
		count(FATHOM_L7_CNT_CALLS_MUTED, 1);
		return 0;
	}
	struct call_args *a = bpf_task_storage_get(&l7_calls, bpf_get_current_task_btf(), 0,
						   BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!a)
		return 0;
	a->buf = buf;
	a->addr = addr;
	a->iovcnt = iovcnt;
	a->fd = fd;
	a->kind = kind;
	a->direction = direction;
	return 0;
}

/* sendmsg/recvmsg: the iovec array and peer address live in the user's msghdr. */
static __always_inline int enter_msg(__s32 fd, __u64 msg, __u8 direction)
{
	struct user_msghdr h = {};
	if (bpf_probe_read_user(&h, sizeof(h), (void *)msg))
		return 0;
	return enter(fd, (__u64)h.msg_iov, (__u32)h.msg_iovlen, (__u64)h.msg_name, CALL_IOV,
		     direction);
}

/* Copy up to `want` bytes of the call's payload into s->data; returns the bytes copied. */
static __always_inline __u32 copy_payload(struct scratch *s, struct call_args *a, __u32 want)
{
	if (want > FATHOM_L7_MAX_DATA)
		want = FATHOM_L7_MAX_DATA;
	if (a->kind == CALL_BUF) {
		__u32 n = want;
		if (n > FATHOM_L7_MAX_DATA)
			return 0;
		if (bpf_probe_read_user(s->data, n, (void *)a->buf))
			return 0;
		return n;
	}
	__u32 off = 0;
	__u32 cnt = a->iovcnt;
	struct iovec *iov = (struct iovec *)a->buf;
	for (int i = 0; i < FATHOM_L7_MAX_IOV; i++) {
		if (i >= cnt || off >= want)
			break;
		struct iovec v = {};
		if (bpf_probe_read_user(&v, sizeof(v), &iov[i]))
			break;
		__u64 len = v.iov_len;
		if (len > want - off)
			len = want - off;
		off &= FATHOM_L7_MAX_DATA - 1;
		if (len > FATHOM_L7_MAX_DATA)
			break;
		if (len && bpf_probe_read_user(s->data + off, len, v.iov_base))
			break;
		off += len;
	}
	return off;
}

static __always_inline __u32 be32(const __u8 *b)
{
	return ((__u32)b[0] << 24) | ((__u32)b[1] << 16) | ((__u32)b[2] << 8) | b[3];
}

static __always_inline __u16 be16(const __u8 *b)
{
	return ((__u16)b[0] << 8) | b[1];
}

static __always_inline int is_digit(__u8 c)
{
	return c >= '0' && c <= '9';
}

#define TAG(a, b, c, d) ((__u32)(a) << 24 | (__u32)(b) << 16 | (__u32)(c) << 8 | (__u32)(d))

/*
 * The first bytes of a TCP connection (either direction: MySQL servers speak first) → a
 * protocol, or UNKNOWN. Returns 0xff when too few bytes were seen to say.
 * Mirrors the user-space detectors in crates/fathom-l7 (infer.rs and each protocol's
 * detect()); user space still decides for itself on the shipped bytes.
 */
static __always_inline __u8 guess(const __u8 *b, __u32 n, __u16 lport, __u16 rport)
{
	if (lport == 53 || rport == 53 || lport == 5353 || rport == 5353)
		return FATHOM_L7_PROTO_DNS;
	if (n < 4)
		return 0xff;
	__u32 w = be32(b);
	switch (w) {
	case TAG('G', 'E', 'T', ' '):
	case TAG('P', 'O', 'S', 'T'):
	case TAG('P', 'U', 'T', ' '):
	case TAG('H', 'E', 'A', 'D'):
	case TAG('D', 'E', 'L', 'E'):
	case TAG('P', 'A', 'T', 'C'):
	case TAG('O', 'P', 'T', 'I'):
	case TAG('C', 'O', 'N', 'N'):
	case TAG('T', 'R', 'A', 'C'):
	case TAG('H', 'T', 'T', 'P'):
		return FATHOM_L7_PROTO_HTTP;
	case TAG('P', 'R', 'I', ' '):
		return FATHOM_L7_PROTO_HTTP2;
	}
	/* TLS record: handshake, version 3.x. */
	if (b[0] == 0x16 && b[1] == 3 && b[2] <= 4)
		return FATHOM_L7_PROTO_TLS;
	/* RESP array (every redis-cli command). */
	if (b[0] == '*' && is_digit(b[1]))
		return FATHOM_L7_PROTO_REDIS;
	if (n < 8)
		return 0xff;
	/* PostgreSQL startup, SSLRequest, GSSENCRequest, CancelRequest. */
	__u32 len = w;
	__u32 code = be32(b + 4);
	if (len >= 8 && len <= 10000 &&
	    (code == 0x00030000 || code == 80877103 || code == 80877104 || code == 80877102))
		return FATHOM_L7_PROTO_POSTGRES;
	/* MySQL server greeting: 3-byte LE length, sequence 0, protocol version 10. */
	__u32 mlen = b[0] | (__u32)b[1] << 8 | (__u32)b[2] << 16;
	if (b[3] == 0 && b[4] == 0x0a && mlen >= 30 && mlen <= 1024 && mlen + 4 <= n)
		return FATHOM_L7_PROTO_MYSQL;
	if (n < 9)
		return 0xff;
	/* HTTP/2 server speaking first: an empty-stream SETTINGS frame. */
	if (b[0] == 0 && b[1] == 0 && b[2] % 6 == 0 && b[3] == 4 && b[4] <= 1 && be32(b + 5) == 0)
		return FATHOM_L7_PROTO_HTTP2;
	if (n < 14)
		return 0xff;
	/* Kafka request: length, api_key, api_version, correlation id, client id length. */
	__u16 api_key = be16(b + 4);
	__u16 api_version = be16(b + 6);
	__s16 client_len = (__s16)be16(b + 12);
	if (len >= 10 && len <= (1 << 24) && api_key <= 74 && api_version <= 20 &&
	    client_len >= -1 && client_len <= 255)
		return FATHOM_L7_PROTO_KAFKA;
	return FATHOM_L7_PROTO_UNKNOWN;
}

/* The peer of an unconnected UDP call, from a user sockaddr. Returns 0 on success. */
static __always_inline int read_peer(__u64 uaddr, struct fathom_l7_event *e)
{
	if (!uaddr)
		return -1;
	__u16 fam = 0;
	if (bpf_probe_read_user(&fam, sizeof(fam), (void *)uaddr))
		return -1;
	if (fam == AF_INET) {
		struct sockaddr_in sin = {};
		if (bpf_probe_read_user(&sin, sizeof(sin), (void *)uaddr))
			return -1;
		v4_mapped_addr(e->remote_addr, sin.sin_addr.s_addr);
		e->remote_port = bpf_ntohs(sin.sin_port);
		return 0;
	}
	if (fam == AF_INET6) {
		struct sockaddr_in6 sin6 = {};
		if (bpf_probe_read_user(&sin6, sizeof(sin6), (void *)uaddr))
			return -1;
		__builtin_memcpy(e->remote_addr, &sin6.sin6_addr, 16);
		e->remote_port = bpf_ntohs(sin6.sin6_port);
		return 0;
	}
	return -1;
}

static __always_inline void read_tuple(struct sock *sk, __u8 family, struct fathom_l7_event *e)
{
	e->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		v4_mapped_addr(e->local_addr, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		v4_mapped_addr(e->remote_addr, BPF_CORE_READ(sk, __sk_common.skc_daddr));
	} else {
		BPF_CORE_READ_INTO(&e->local_addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->remote_addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
}

/*
 * TCP connections opened by a process on this node, by (client, server) endpoints. When the
 * server end is accepted on this node too, only the client end is shipped: the same bytes
 * would otherwise cross the ring twice (user space reports the client end anyway).
 */
struct local_conn_key {
	__u8 client_addr[16];
	__u8 server_addr[16];
	__u16 client_port;
	__u16 server_port;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct local_conn_key);
	__type(value, __u8);
} l7_local_clients SEC(".maps");

/* Key of a TCP socket's connection; `client_end`: the socket is the client. */
static __always_inline void local_key(struct conn *c, int client_end, struct local_conn_key *k)
{
	struct fathom_l7_event t = {};
	read_tuple((struct sock *)c->sk, c->family, &t);
	if (client_end) {
		__builtin_memcpy(k->client_addr, t.local_addr, 16);
		__builtin_memcpy(k->server_addr, t.remote_addr, 16);
		k->client_port = t.local_port;
		k->server_port = t.remote_port;
	} else {
		__builtin_memcpy(k->client_addr, t.remote_addr, 16);
		__builtin_memcpy(k->server_addr, t.local_addr, 16);
		k->client_port = t.remote_port;
		k->server_port = t.local_port;
	}
	k->pad = 0;
}

/* The process's name (its main thread's comm): threads rename themselves ("isc-net-0000"). */
static __always_inline void process_comm(char *comm)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	if (!leader || bpf_probe_read_kernel_str(comm, FATHOM_COMM_LEN, &leader->comm) < 0)
		bpf_get_current_comm(comm, FATHOM_COMM_LEN);
}

/*
 * A pending TCP server end whose client is on this node is muted (returns 1). Decided at the
 * first data, not at accept: by then the client's connect() has returned and registered it
 * (accept can return first on loopback).
 */
static __always_inline int mute_if_peer_local(struct conn *c)
{
	if (c->state != ST_PENDING || c->role != FATHOM_L7_ROLE_SERVER ||
	    c->l4proto != IPPROTO_TCP)
		return 0;
	struct local_conn_key lk = {};
	local_key(c, 0, &lk);
	if (!bpf_map_lookup_elem(&l7_local_clients, &lk))
		return 0;
	c->state = ST_MUTED;
	c->flags |= CONN_F_PEER_LOCAL;
	count(FATHOM_L7_CNT_PEER_LOCAL, 1);
	return 1;
}

static __always_inline int ship(struct scratch *s, struct conn *c, __u64 id, __s32 fd, long ret,
				__u32 n, __u8 direction, __u8 protocol, __u8 flags);

static __always_inline int leave(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct call_args *ap = bpf_task_storage_get(&l7_calls, bpf_get_current_task_btf(), 0, 0);
	if (!ap || !ap->kind)
		return 0;
	struct call_args a = *ap;
	ap->kind = 0;
	if (ret <= 0)
		return 0;
	if (a.kind == CALL_MMSG) {
		/* ret counts messages; the first one's length is msg_len, filled in by the kernel. */
		struct mmsghdr m = {};
		if (bpf_probe_read_user(&m, sizeof(m), (void *)a.buf))
			return 0;
		a.buf = (__u64)m.msg_hdr.msg_iov;
		a.iovcnt = (__u32)m.msg_hdr.msg_iovlen;
		a.addr = (__u64)m.msg_hdr.msg_name;
		a.kind = CALL_IOV;
		ret = m.msg_len;
		if (ret <= 0)
			return 0;
	}

	struct conn_key k = { .tgid = id >> 32, .fd = a.fd };
	struct conn *c = bpf_map_lookup_elem(&l7_conns, &k);
	if (!c || c->state == ST_NOT_SOCKET || c->state == ST_MUTED)
		return 0;
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&l7_scratch, &zero);
	if (!s)
		return 0;
	struct fathom_l7_event *e = &s->ev;
	struct sock *sk = (struct sock *)c->sk;

	/* Tuple first: UDP decides by port before any payload is copied. */
	read_tuple(sk, c->family, e);
	if (c->l4proto == IPPROTO_UDP)
		read_peer(a.addr, e);
	if (c->state == ST_UDP) {
		if (e->local_port != 53 && e->remote_port != 53 && e->local_port != 5353 &&
		    e->remote_port != 5353)
			return 0;
		c->protocol = FATHOM_L7_PROTO_DNS;
	}

	__u32 cap = capture_bytes;
	__u32 want = (__u64)ret < cap ? (__u32)ret : cap;
	__u32 n = copy_payload(s, &a, want);

	if (mute_if_peer_local(c))
		return 0;
	if (c->state == ST_PENDING) {
		__u8 p = guess(s->data, n, e->local_port, e->remote_port);
		if (p == 0xff) {
			if (++c->pending_calls < MAX_PENDING_CALLS)
				return 0;
			p = FATHOM_L7_PROTO_UNKNOWN;
		}
		if (p == FATHOM_L7_PROTO_UNKNOWN) {
			c->state = ST_MUTED;
			count(FATHOM_L7_CNT_CONNS_MUTED, 1);
			return 0;
		}
		c->state = ST_ACTIVE;
		c->protocol = p;
		count(FATHOM_L7_CNT_CONNS_KNOWN, 1);
	}
	if (c->protocol == FATHOM_L7_PROTO_TLS && c->bytes >= tls_handshake_bytes) {
		/* Past the handshake only ciphertext follows: the uprobes see the plaintext. */
		c->state = ST_MUTED;
		return 0;
	}
	c->bytes += ret;
	return ship(s, c, id, a.fd, ret, n, a.direction, c->protocol, 0);
}

/*
 * Fill the event header in s (its tuple already read) and put header + n bytes of s->data on
 * the ring. Shared by the syscall exits and the TLS uprobes.
 */
static __always_inline int ship(struct scratch *s, struct conn *c, __u64 id, __s32 fd, long ret,
				__u32 n, __u8 direction, __u8 protocol, __u8 flags)
{
	struct fathom_l7_event *e = &s->ev;
	struct sock *sk = (struct sock *)c->sk;
	e->type = FATHOM_EV_L7_DATA;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->fd = fd;
	e->ts_ns = bpf_ktime_get_boot_ns();
	e->cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->ret = ret;
	e->data_len = n;
	e->direction = direction;
	e->protocol = protocol;
	e->role = c->role;
	e->flags = flags | ((__u64)ret > n ? FATHOM_L7_F_TRUNCATED : 0);
	e->family = c->family;
	e->l4proto = c->l4proto;
	e->pad = 0;
	process_comm(e->comm);
	if (e->flags & FATHOM_L7_F_TRUNCATED)
		count(FATHOM_L7_CNT_TRUNCATED, 1);

	__u64 size = sizeof(struct fathom_l7_event) + n;
	if (size > sizeof(struct scratch))
		return 0;
	if (bpf_ringbuf_output(&l7_events, s, size, ring_flags())) {
		count(FATHOM_L7_CNT_EVENTS_LOST, 1);
		return 0;
	}
	count(FATHOM_L7_CNT_EVENTS_SENT, 1);
	count(FATHOM_L7_CNT_BYTES_SHIPPED, n);
	return 0;
}

#define ARG(i) ((__u64)ctx->args[i])

SEC("tracepoint/syscalls/sys_enter_read")
int l7_enter_read(struct trace_event_raw_sys_enter *ctx)
{
	return enter(ARG(0), ARG(1), 0, 0, CALL_BUF, FATHOM_L7_INGRESS);
}

SEC("tracepoint/syscalls/sys_enter_write")
int l7_enter_write(struct trace_event_raw_sys_enter *ctx)
{
	return enter(ARG(0), ARG(1), 0, 0, CALL_BUF, FATHOM_L7_EGRESS);
}

SEC("tracepoint/syscalls/sys_enter_readv")
int l7_enter_readv(struct trace_event_raw_sys_enter *ctx)
{
	return enter(ARG(0), ARG(1), ARG(2), 0, CALL_IOV, FATHOM_L7_INGRESS);
}

SEC("tracepoint/syscalls/sys_enter_writev")
int l7_enter_writev(struct trace_event_raw_sys_enter *ctx)
{
	return enter(ARG(0), ARG(1), ARG(2), 0, CALL_IOV, FATHOM_L7_EGRESS);
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int l7_enter_sendto(struct trace_event_raw_sys_enter *ctx)
{
	return enter(ARG(0), ARG(1), 0, ARG(4), CALL_BUF, FATHOM_L7_EGRESS);
}

SEC("tracepoint/syscalls/sys_enter_recvfrom")
int l7_enter_recvfrom(struct trace_event_raw_sys_enter *ctx)
{
	return enter(ARG(0), ARG(1), 0, ARG(4), CALL_BUF, FATHOM_L7_INGRESS);
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int l7_enter_sendmsg(struct trace_event_raw_sys_enter *ctx)
{
	return enter_msg(ARG(0), ARG(1), FATHOM_L7_EGRESS);
}

SEC("tracepoint/syscalls/sys_enter_recvmsg")
int l7_enter_recvmsg(struct trace_event_raw_sys_enter *ctx)
{
	return enter_msg(ARG(0), ARG(1), FATHOM_L7_INGRESS);
}

/* Only the first message of a vector is captured (one event per call keeps the program small). */
SEC("tracepoint/syscalls/sys_enter_sendmmsg")
int l7_enter_sendmmsg(struct trace_event_raw_sys_enter *ctx)
{
	return enter(ARG(0), ARG(1), 0, 0, CALL_MMSG, FATHOM_L7_EGRESS);
}

SEC("tracepoint/syscalls/sys_enter_recvmmsg")
int l7_enter_recvmmsg(struct trace_event_raw_sys_enter *ctx)
{
	return enter(ARG(0), ARG(1), 0, 0, CALL_MMSG, FATHOM_L7_INGRESS);
}

SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int l7_exit_sendmmsg(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_recvmmsg")
int l7_exit_recvmmsg(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_read")
int l7_exit_read(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_write")
int l7_exit_write(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_readv")
int l7_exit_readv(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_writev")
int l7_exit_writev(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int l7_exit_sendto(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int l7_exit_recvfrom(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int l7_exit_sendmsg(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_recvmsg")
int l7_exit_recvmsg(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

/* connect(): remember the fd so the exit can mark the socket as the client side. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __s32);
} l7_connecting SEC(".maps");

static __always_inline void set_role(__s32 fd, __u8 role)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid == self_tgid)
		return;
	struct conn *c = conn_for(tgid, fd);
	if (c && c->state != ST_NOT_SOCKET)
		c->role = role;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int l7_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__s32 fd = ARG(0);
	bpf_map_update_elem(&l7_connecting, &id, &fd, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int l7_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__s32 *fdp = bpf_map_lookup_elem(&l7_connecting, &id);
	if (!fdp)
		return 0;
	__s32 fd = *fdp;
	bpf_map_delete_elem(&l7_connecting, &id);
	if (ctx->ret == 0 || ctx->ret == -EINPROGRESS) {
		set_role(fd, FATHOM_L7_ROLE_CLIENT);
		struct conn_key ck = { .tgid = id >> 32, .fd = fd };
		struct conn *c = bpf_map_lookup_elem(&l7_conns, &ck);
		if (c && c->l4proto == IPPROTO_TCP && c->state != ST_NOT_SOCKET) {
			struct local_conn_key k = {};
			__u8 one = 1;
			local_key(c, 1, &k);
			bpf_map_update_elem(&l7_local_clients, &k, &one, BPF_ANY);
		}
	}
	return 0;
}

static __always_inline int on_accepted(long fd)
{
	if (fd >= 0)
		set_role(fd, FATHOM_L7_ROLE_SERVER);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int l7_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	return on_accepted(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int l7_exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return on_accepted(ctx->ret);
}

/* close(): forget the fd (it will be reused); tell user space if the stream was shipped. */
SEC("tracepoint/syscalls/sys_enter_close")
int l7_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct conn_key k = { .tgid = id >> 32, .fd = ARG(0) };
	struct conn *c = bpf_map_lookup_elem(&l7_conns, &k);
	if (!c)
		return 0;
	if (c->state == ST_ACTIVE || (c->state == ST_UDP && c->protocol) ||
	    (c->flags & CONN_F_TLS_COVERED)) {
		struct fathom_l7_event *e = bpf_ringbuf_reserve(&l7_events, sizeof(*e), 0);
		if (e) {
			__builtin_memset(e, 0, sizeof(*e));
			e->type = FATHOM_EV_L7_CLOSE;
			e->pid = k.tgid;
			e->tid = (__u32)id;
			e->fd = k.fd;
			e->ts_ns = bpf_ktime_get_boot_ns();
			e->protocol = c->protocol;
			e->role = c->role;
			e->family = c->family;
			e->l4proto = c->l4proto;
			struct sock *sk = (struct sock *)c->sk;
			e->cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
			process_comm(e->comm);
			bpf_ringbuf_submit(e, ring_flags());
			count(FATHOM_L7_CNT_EVENTS_SENT, 1);
		} else {
			count(FATHOM_L7_CNT_EVENTS_LOST, 1);
		}
	}
	if (c->role == FATHOM_L7_ROLE_CLIENT && c->l4proto == IPPROTO_TCP) {
		struct local_conn_key lk = {};
		local_key(c, 1, &lk);
		bpf_map_delete_elem(&l7_local_clients, &lk);
	}
	bpf_map_delete_elem(&l7_conns, &k);
	return 0;
}

#include "tls.bpf.c"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
