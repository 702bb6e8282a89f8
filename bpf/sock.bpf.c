// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sock: TCP connection lifecycle from the socket state tracepoint (tcplife-style).
 * - SYN_SENT happens in the connecting process's context: remember who and when.
 * - SYN_SENT → ESTABLISHED (or → CLOSE on refusal): handshake latency and the full tuple,
 *   attributed to the process remembered above.
 * - → CLOSE from a connected state: srtt, retransmits, bytes acked/received.
 * Two entry points share the logic: tp_btf (typed, cheaper) and the classic tracepoint for
 * kernels without BTF-typed tracepoints; the loader enables exactly one of them.
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

struct conn_start {
	__u64 ts_ns;
	__u64 cgroup_id;
	__u32 pid;
	__u32 tid;
	char comm[FATHOM_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* struct sock * */
	__type(value, struct conn_start);
} connecting SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} sock_events SEC(".maps");

FATHOM_COUNTERS_MAP(counters);

static __always_inline void read_tuple(const struct sock *sk, struct fathom_sock_event *e)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->family = family;
	e->proto = IPPROTO_TCP;
	e->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	/* On TCP_CLOSE the kernel has already released the bound port (inet_put_port zeroes
	 * inet_num before the state tracepoint fires); inet_sport still holds it. */
	if (!e->local_port)
		e->local_port = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	e->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		v4_mapped_addr(e->local_addr, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		v4_mapped_addr(e->remote_addr, BPF_CORE_READ(sk, __sk_common.skc_daddr));
	} else {
		BPF_CORE_READ_INTO(&e->local_addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->remote_addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
}

static __always_inline struct fathom_sock_event *reserve(__u32 type)
{
	struct fathom_sock_event *e = bpf_ringbuf_reserve(&sock_events, sizeof(*e), 0);
	if (!e) {
		bump(&counters, FATHOM_CNT_EVENTS_LOST);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->type = type;
	e->ts_ns = bpf_ktime_get_boot_ns();
	return e;
}

/* typed: sk is a BTF pointer (tp_btf), which is what bpf_get_socket_cookie accepts in tracing
 * programs; the classic tracepoint passes 0 and reports no cookie. */
static __always_inline int on_state(const struct sock *sk, int oldstate, int newstate, int proto,
				    const int typed)
{
	if (proto != IPPROTO_TCP)
		return 0;
	__u64 key = (__u64)sk;

	if (newstate == TCP_SYN_SENT) {
		struct conn_start cs = {};
		__u64 id = bpf_get_current_pid_tgid();
		cs.ts_ns = bpf_ktime_get_boot_ns();
		cs.pid = id >> 32;
		cs.tid = (__u32)id;
		cs.cgroup_id = bpf_get_current_cgroup_id();
		bpf_get_current_comm(cs.comm, sizeof(cs.comm));
		if (bpf_map_update_elem(&connecting, &key, &cs, BPF_ANY))
			bump(&counters, FATHOM_CNT_SOCK_MAP_FULL);
		return 0;
	}

	if (oldstate == TCP_SYN_SENT) {
		struct conn_start *cs = bpf_map_lookup_elem(&connecting, &key);
		struct fathom_sock_event *e = reserve(FATHOM_EV_SOCK_CONNECT);
		if (e) {
			read_tuple(sk, e);
			e->failed = newstate != TCP_ESTABLISHED;
			if (cs) {
				e->pid = cs->pid;
				e->tid = cs->tid;
				e->cgroup_id = cs->cgroup_id;
				__builtin_memcpy(e->comm, cs->comm, sizeof(e->comm));
				if (!e->failed)
					e->handshake_ns = e->ts_ns - cs->ts_ns;
			}
			if (typed)
				e->cookie = bpf_get_socket_cookie((void *)sk);
			bpf_ringbuf_submit(e, 0);
		}
		bpf_map_delete_elem(&connecting, &key);
		return 0;
	}

	if (newstate != TCP_CLOSE)
		return 0;
	/* Listeners and half-open passive sockets have no connection to report. */
	if (oldstate == TCP_LISTEN || oldstate == TCP_SYN_RECV || oldstate == TCP_NEW_SYN_RECV ||
	    oldstate == TCP_CLOSE)
		return 0;
	struct fathom_sock_event *e = reserve(FATHOM_EV_SOCK_CLOSE);
	if (!e)
		return 0;
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	read_tuple(sk, e);
	e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3; /* the kernel keeps srtt << 3 */
	e->retransmits = BPF_CORE_READ(tp, total_retrans);
	e->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
	e->bytes_received = BPF_CORE_READ(tp, bytes_received);
	if (typed)
		e->cookie = bpf_get_socket_cookie((void *)sk);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(sock_state_btf, struct sock *sk, int oldstate, int newstate)
{
	return on_state(sk, oldstate, newstate, sk->sk_protocol, 1);
}

SEC("tracepoint/sock/inet_sock_set_state")
int sock_state_tp(struct trace_event_raw_inet_sock_set_state *ctx)
{
	return on_state((const struct sock *)ctx->skaddr, ctx->oldstate, ctx->newstate, ctx->protocol, 0);
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int tcp_retransmit(void *ctx)
{
	bump(&counters, FATHOM_CNT_TCP_RETRANSMITS);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
