// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * probe: one trivial program per hook kind Fathom may use. The feature probe loads and
 * attaches each alone (autoload off for the rest) to learn what this kernel really allows:
 * a config option, a lockdown or a missing trampoline all show up as a failed load/attach.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("kprobe/tcp_connect")
int probe_kprobe(struct pt_regs *ctx)
{
	return 0;
}

SEC("fentry/tcp_connect")
int BPF_PROG(probe_fentry, struct sock *sk)
{
	return 0;
}

SEC("lsm/socket_connect")
int BPF_PROG(probe_lsm, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	return ret;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(probe_tp_btf, struct sock *sk, int oldstate, int newstate)
{
	return 0;
}

SEC("raw_tp/inet_sock_set_state")
int probe_raw_tp(void *ctx)
{
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int probe_tracepoint(void *ctx)
{
	return 0;
}

SEC("tracepoint/skb/kfree_skb")
int probe_kfree_skb(void *ctx)
{
	return 0;
}

SEC("uprobe")
int probe_uprobe(struct pt_regs *ctx)
{
	return 0;
}

SEC("xdp")
int probe_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* Not a feature probe: the benchmarks' baseline. The cost of BPF_PROG_TEST_RUN of a TC program
 * that does nothing, with the same packet, is subtracted from the policy program's cost. */
SEC("tc")
int probe_tc_noop(struct __sk_buff *skb)
{
	return 0; /* TC_ACT_OK */
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
