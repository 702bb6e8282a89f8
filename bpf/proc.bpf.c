// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * proc: who owns which socket, and the process lifecycle.
 * - cgroup sock_create / connect / sendmsg run in the process's context: socket cookie → owner.
 * - cgroup_skb egress sees each non-TCP socket's datagrams with their real tuple (the source
 *   port is only known once the socket is bound): emit the tuple once per (socket, peer).
 *   TCP is attributed by sock.bpf.c (active opens) and the accept tracepoints (passive).
 * - accept/accept4 exit: the new fd's socket and its tuple, attributed to the accepting process.
 * - sched_process_exec/exit keep user space's process table current.
 * The cgroup programs always allow: this object observes, it never enforces.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "fathom.h"
#include "common.h"

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket cookie */
	__type(value, struct fathom_sock_owner);
} sock_owners SEC(".maps");

struct tuple_seen_key {
	__u64 cookie;
	__u8 remote_addr[16];
	__u16 remote_port;
	__u16 local_port;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tuple_seen_key);
	__type(value, __u8);
} tuples_seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} proc_events SEC(".maps");

FATHOM_COUNTERS_MAP(counters);

static __always_inline void *reserve(__u64 size)
{
	void *e = bpf_ringbuf_reserve(&proc_events, size, 0);
	if (!e)
		bump(&counters, FATHOM_CNT_EVENTS_LOST);
	return e;
}

static __always_inline void set_owner(__u64 cookie)
{
	struct fathom_sock_owner o = {};
	__u64 id = bpf_get_current_pid_tgid();
	o.pid = id >> 32;
	o.tid = (__u32)id;
	o.cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(o.comm, sizeof(o.comm));
	if (bpf_map_update_elem(&sock_owners, &cookie, &o, BPF_ANY))
		bump(&counters, FATHOM_CNT_SOCK_MAP_FULL);
}

SEC("cgroup/sock_create")
int proc_sock_create(struct bpf_sock *ctx)
{
	if (ctx->family == AF_INET || ctx->family == AF_INET6)
		set_owner(bpf_get_socket_cookie(ctx));
	return 1;
}

/* The process that connects or sends may not be the one that created the socket (fork). */
SEC("cgroup/connect4")
int proc_connect4(struct bpf_sock_addr *ctx)
{
	set_owner(bpf_get_socket_cookie(ctx));
	return 1;
}

SEC("cgroup/connect6")
int proc_connect6(struct bpf_sock_addr *ctx)
{
	set_owner(bpf_get_socket_cookie(ctx));
	return 1;
}

SEC("cgroup/sendmsg4")
int proc_sendmsg4(struct bpf_sock_addr *ctx)
{
	set_owner(bpf_get_socket_cookie(ctx));
	return 1;
}

SEC("cgroup/sendmsg6")
int proc_sendmsg6(struct bpf_sock_addr *ctx)
{
	set_owner(bpf_get_socket_cookie(ctx));
	return 1;
}

SEC("cgroup_skb/egress")
int proc_skb_egress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	if (sk->protocol == IPPROTO_TCP)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct fathom_sock_owner *o = bpf_map_lookup_elem(&sock_owners, &cookie);
	if (!o)
		return 1;

	struct fathom_sock_event ev = {};
	__u32 l4off;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ih;
		if (bpf_skb_load_bytes(skb, 0, &ih, sizeof(ih)) || ih.ihl < 5)
			return 1;
		if (ih.frag_off & bpf_htons(0x1fff))
			return 1; /* not a first fragment: no ports */
		ev.family = FATHOM_AF_INET;
		ev.proto = ih.protocol;
		v4_mapped_addr(ev.local_addr, ih.saddr);
		v4_mapped_addr(ev.remote_addr, ih.daddr);
		l4off = ih.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ih;
		if (bpf_skb_load_bytes(skb, 0, &ih, sizeof(ih)))
			return 1;
		ev.family = FATHOM_AF_INET6;
		ev.proto = ih.nexthdr; /* sockets do not add extension headers on their own */
		__builtin_memcpy(ev.local_addr, &ih.saddr, 16);
		__builtin_memcpy(ev.remote_addr, &ih.daddr, 16);
		l4off = sizeof(ih);
	} else {
		return 1;
	}

	__u8 l4[8];
	if (bpf_skb_load_bytes(skb, l4off, l4, sizeof(l4)))
		return 1;
	if (ev.proto == IPPROTO_UDP || ev.proto == 132 /* SCTP */) {
		ev.local_port = ((__u16)l4[0] << 8) | l4[1];
		ev.remote_port = ((__u16)l4[2] << 8) | l4[3];
	} else if (ev.proto == IPPROTO_ICMP || ev.proto == 58) {
		/* Echo identifier, as the flow program keys ICMP echo. */
		ev.local_port = ((__u16)l4[4] << 8) | l4[5];
		ev.remote_port = ev.local_port;
	} else {
		return 1;
	}

	struct tuple_seen_key k = {};
	k.cookie = cookie;
	__builtin_memcpy(k.remote_addr, ev.remote_addr, 16);
	k.remote_port = ev.remote_port;
	k.local_port = ev.local_port;
	if (bpf_map_lookup_elem(&tuples_seen, &k))
		return 1;
	__u8 one = 1;
	bpf_map_update_elem(&tuples_seen, &k, &one, BPF_ANY);

	struct fathom_sock_event *e = reserve(sizeof(*e));
	if (!e)
		return 1;
	__builtin_memcpy(e, &ev, sizeof(ev));
	e->type = FATHOM_EV_SOCK_TUPLE;
	e->pid = o->pid;
	e->tid = o->tid;
	e->cgroup_id = o->cgroup_id;
	e->cookie = cookie;
	e->ts_ns = bpf_ktime_get_boot_ns();
	__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 1;
}

/* fd → struct sock of the calling task, through its file table. */
static __always_inline struct sock *fd_to_sock(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	if (!f)
		return 0;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	if (!sock)
		return 0;
	return BPF_CORE_READ(sock, sk);
}

static __always_inline int on_accept(long fd)
{
	if (fd < 0)
		return 0;
	struct sock *sk = fd_to_sock(fd);
	if (!sk)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	struct fathom_sock_event *e = reserve(sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->type = FATHOM_EV_SOCK_ACCEPT;
	e->family = family;
	e->proto = IPPROTO_TCP;
	e->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		v4_mapped_addr(e->local_addr, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		v4_mapped_addr(e->remote_addr, BPF_CORE_READ(sk, __sk_common.skc_daddr));
	} else {
		BPF_CORE_READ_INTO(&e->local_addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->remote_addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	__u64 id = bpf_get_current_pid_tgid();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->ts_ns = bpf_ktime_get_boot_ns();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int proc_accept4_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int proc_accept_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept(ctx->ret);
}

SEC("tracepoint/sched/sched_process_exec")
int proc_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct fathom_proc_event *e = reserve(sizeof(*e));
	if (!e)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 id = bpf_get_current_pid_tgid();
	e->type = FATHOM_EV_PROC_EXEC;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->ts_ns = bpf_ktime_get_boot_ns();
	e->exit_code = 0;
	e->pad = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	/* __data_loc: low 16 bits are the offset of the string from the start of the record. */
	__u32 loc = ctx->__data_loc_filename;
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), (void *)ctx + (loc & 0xFFFF));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int proc_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((id >> 32) != (__u32)id)
		return 0; /* a thread, not the process */
	struct fathom_proc_event *e = reserve(sizeof(*e));
	if (!e)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	e->type = FATHOM_EV_PROC_EXIT;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->ts_ns = bpf_ktime_get_boot_ns();
	e->exit_code = BPF_CORE_READ(task, exit_code);
	e->pad = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->filename[0] = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
