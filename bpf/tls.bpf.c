// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tls: plaintext of OpenSSL connections, from uprobes on libssl's SSL_write, SSL_read,
 * SSL_write_ex and SSL_read_ex (entry + return).
 *
 * Not an object of its own: included at the end of l7.bpf.c so that both share l7_conns, the
 * scratch buffer, the ring and the counters (one object, no pinned maps to share).
 *
 * - Entry (tls_enter): save (ssl, buf, size_t *out for the _ex forms) per thread. The attach
 *   cookie says which function: FATHOM_TLS_COOKIE_READ (ingress) and FATHOM_TLS_COOKIE_EX.
 * - While the call is in flight, the syscall hooks of l7.bpf.c see its read/write on the
 *   socket (tls_note_fd): the fd is recorded in the call and per (tgid, ssl) for calls served
 *   from OpenSSL's buffer without a syscall, and the socket is marked TLS-covered: its
 *   ciphertext is never shipped again.
 * - Return (tls_exit): the real length (return value; *out when an _ex call returned 1), at
 *   most `capture_bytes` of buf copied, shipped as a FATHOM_L7_F_TLS event of that socket
 *   (fd, tuple, cookie, role as the syscall path knows them).
 *
 * Finding the fd inside struct ssl_st would depend on OpenSSL's private layout; the syscall
 * correlation does not. The cost: a plaintext call whose socket was never seen in a syscall
 * (the very first SSL_read answered from a buffer) is dropped and counted (tls_no_fd).
 */

struct tls_call {
	__u64 ssl;
	__u64 buf;
	__u64 out; /* size_t *written / *readbytes of the _ex forms, 0 otherwise */
	__s32 fd;  /* socket used during the call, -1 until a syscall is seen */
	__u8 direction;
	__u8 ex;
	__u8 active; /* a call is in flight */
	__u8 pad;
};

/* Per thread, in task storage: every syscall entry on a socket looks here (tls_note_fd). */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tls_call);
} l7_tls_calls SEC(".maps");

struct tls_ssl_key {
	__u64 ssl;
	__u32 tgid;
	__u32 pad;
};

/* The socket of each SSL object seen in a syscall (the SSL pointer is per process). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tls_ssl_key);
	__type(value, __s32);
} l7_tls_fds SEC(".maps");

/*
 * Called by the syscall entries on an inet socket: if the thread is inside an SSL call, the
 * syscall is that call's own I/O (ciphertext): remember the fd and tell the caller not to
 * ship it (returns 1).
 */
static __always_inline int tls_note_fd(__u64 id, __s32 fd, struct conn *c)
{
	struct tls_call *t = bpf_task_storage_get(&l7_tls_calls, bpf_get_current_task_btf(), 0, 0);
	if (!t || !t->active)
		return 0;
	if (t->fd < 0) {
		t->fd = fd;
		struct tls_ssl_key k = { .ssl = t->ssl, .tgid = id >> 32 };
		bpf_map_update_elem(&l7_tls_fds, &k, &fd, BPF_ANY);
	}
	c->flags |= CONN_F_TLS_COVERED;
	return 1;
}

SEC("uprobe")
int BPF_UPROBE(tls_enter, void *ssl, void *buf, __u64 num, void *out)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((__u32)(id >> 32) == self_tgid)
		return 0;
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct tls_call *t = bpf_task_storage_get(&l7_tls_calls, bpf_get_current_task_btf(), 0,
						  BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!t)
		return 0;
	t->ssl = (__u64)ssl;
	t->buf = (__u64)buf;
	t->out = (cookie & FATHOM_TLS_COOKIE_EX) ? (__u64)out : 0;
	t->fd = -1;
	t->direction = (cookie & FATHOM_TLS_COOKIE_READ) ? FATHOM_L7_INGRESS : FATHOM_L7_EGRESS;
	t->ex = (cookie & FATHOM_TLS_COOKIE_EX) ? 1 : 0;
	t->active = 1;
	return 0;
}

SEC("uretprobe")
int BPF_URETPROBE(tls_exit, long rc)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call *tp = bpf_task_storage_get(&l7_tls_calls, bpf_get_current_task_btf(), 0, 0);
	if (!tp || !tp->active)
		return 0;
	struct tls_call t = *tp;
	tp->active = 0;

	/* SSL_read/SSL_write return an int: bytes moved, or <= 0. */
	long ret = (int)rc;
	if (t.ex) {
		if (ret != 1 || !t.out)
			return 0;
		__u64 moved = 0;
		if (bpf_probe_read_user(&moved, sizeof(moved), (void *)t.out))
			return 0;
		ret = (long)moved;
	}
	if (ret <= 0)
		return 0;

	__u32 tgid = id >> 32;
	if (t.fd < 0) {
		struct tls_ssl_key k = { .ssl = t.ssl, .tgid = tgid };
		__s32 *fdp = bpf_map_lookup_elem(&l7_tls_fds, &k);
		if (!fdp) {
			count(FATHOM_L7_CNT_TLS_NO_FD, 1);
			return 0;
		}
		t.fd = *fdp;
	}
	struct conn_key ck = { .tgid = tgid, .fd = t.fd };
	struct conn *c = bpf_map_lookup_elem(&l7_conns, &ck);
	if (!c || c->state == ST_NOT_SOCKET || c->l4proto != IPPROTO_TCP) {
		count(FATHOM_L7_CNT_TLS_NO_FD, 1);
		return 0;
	}
	/* The server end of a client on this node: the client's plaintext is reported. */
	if ((c->flags & CONN_F_PEER_LOCAL) || mute_if_peer_local(c))
		return 0;
	if (c->flags & CONN_F_TLS_MUTED)
		return 0;

	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&l7_scratch, &zero);
	if (!s)
		return 0;
	read_tuple((struct sock *)c->sk, c->family, &s->ev);
	struct call_args a = { .buf = t.buf, .kind = CALL_BUF };
	__u32 cap = capture_bytes;
	__u32 want = (__u64)ret < cap ? (__u32)ret : cap;
	__u32 n = copy_payload(s, &a, want);

	if (!c->tls_proto) {
		__u8 p = guess(s->data, n, s->ev.local_port, s->ev.remote_port);
		if (p == FATHOM_L7_PROTO_UNKNOWN) {
			c->flags |= CONN_F_TLS_MUTED;
			count(FATHOM_L7_CNT_CONNS_MUTED, 1);
			return 0;
		}
		/* 0xff: too few bytes to say; shipped, user space decides. */
		if (p != 0xff) {
			c->tls_proto = p;
			count(FATHOM_L7_CNT_CONNS_KNOWN, 1);
		}
	}
	count(FATHOM_L7_CNT_TLS_EVENTS, 1);
	return ship(s, c, id, t.fd, ret, n, t.direction, c->tls_proto, FATHOM_L7_F_TLS);
}
