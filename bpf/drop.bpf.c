// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * drop: where and why the kernel drops packets, from the skb/kfree_skb tracepoint and its drop
 * reason (enum skb_drop_reason, 5.17+). Every drop is counted per reason, exactly (per-CPU
 * hash). Events carry the packet's tuple, device and call site, rate-limited per reason so a
 * drop storm cannot flood the ringbuf; the number of suppressed drops rides on the next event.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "fathom.h"
#include "common.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define SKB_CONSUMED_ 1

/* Events per reason per CPU per second; user space sets it before load. */
const volatile __u32 events_per_sec = 100;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* reason */
	__type(value, __u64);
} drop_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct fathom_drop_limit);
} drop_limits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} drop_events SEC(".maps");

FATHOM_COUNTERS_MAP(counters);

/* Returns the number of suppressed drops to report, or -1 when this one is suppressed. */
static __always_inline int rate_limit(__u32 reason, __u64 now)
{
	struct fathom_drop_limit *l = bpf_map_lookup_elem(&drop_limits, &reason);
	if (!l) {
		struct fathom_drop_limit init = { .window_start_ns = now, .emitted = 1 };
		bpf_map_update_elem(&drop_limits, &reason, &init, BPF_NOEXIST);
		return 0;
	}
	if (now - l->window_start_ns >= 1000000000ULL) {
		__u32 s = l->suppressed;
		l->window_start_ns = now;
		l->emitted = 1;
		l->suppressed = 0;
		return s;
	}
	if (l->emitted < events_per_sec) {
		__u32 s = l->suppressed;
		l->emitted++;
		l->suppressed = 0;
		return s;
	}
	l->suppressed++;
	return -1;
}

static __always_inline void read_headers(struct sk_buff *skb, struct fathom_drop_event *e)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	e->l3_proto = proto;
	if (!head || nh == (__u16)~0U)
		return;
	__u32 l4off;
	if (proto == ETH_P_IP) {
		struct iphdr ih;
		if (bpf_probe_read_kernel(&ih, sizeof(ih), head + nh) || ih.version != 4)
			return;
		e->family = FATHOM_AF_INET;
		e->proto = ih.protocol;
		v4_mapped_addr(e->saddr, ih.saddr);
		v4_mapped_addr(e->daddr, ih.daddr);
		if (ih.frag_off & bpf_htons(0x1fff))
			return;
		l4off = nh + ih.ihl * 4;
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr ih;
		if (bpf_probe_read_kernel(&ih, sizeof(ih), head + nh) || ih.version != 6)
			return;
		e->family = FATHOM_AF_INET6;
		e->proto = ih.nexthdr;
		__builtin_memcpy(e->saddr, &ih.saddr, 16);
		__builtin_memcpy(e->daddr, &ih.daddr, 16);
		l4off = nh + sizeof(ih);
	} else {
		return;
	}
	if (e->proto == IPPROTO_TCP || e->proto == IPPROTO_UDP || e->proto == 132) {
		__be16 ports[2];
		if (!bpf_probe_read_kernel(ports, sizeof(ports), head + l4off)) {
			e->sport = bpf_ntohs(ports[0]);
			e->dport = bpf_ntohs(ports[1]);
		}
	}
}

SEC("tracepoint/skb/kfree_skb")
int drop_kfree_skb(struct trace_event_raw_kfree_skb *ctx)
{
	__u32 reason = ctx->reason;
	if (reason <= SKB_CONSUMED_)
		return 0; /* not a drop */

	__u64 one = 1;
	__u64 *cnt = bpf_map_lookup_elem(&drop_counts, &reason);
	if (cnt)
		*cnt += 1;
	else if (bpf_map_update_elem(&drop_counts, &reason, &one, BPF_NOEXIST))
		bump(&counters, FATHOM_CNT_SOCK_MAP_FULL);

	__u64 now = bpf_ktime_get_boot_ns();
	int suppressed = rate_limit(reason, now);
	if (suppressed < 0)
		return 0;

	struct fathom_drop_event *e = bpf_ringbuf_reserve(&drop_events, sizeof(*e), 0);
	if (!e) {
		bump(&counters, FATHOM_CNT_EVENTS_LOST);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	struct sk_buff *skb = ctx->skbaddr;
	e->type = FATHOM_EV_DROP;
	e->reason = reason;
	e->ts_ns = now;
	e->location = (__u64)ctx->location;
	e->suppressed = suppressed;
	e->len = BPF_CORE_READ(skb, len);
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	if (dev) {
		e->ifindex = BPF_CORE_READ(dev, ifindex);
		e->netns = BPF_CORE_READ(dev, nd_net.net, ns.inum);
	}
	read_headers(skb, e);
	bpf_ringbuf_submit(e, 0);
	bump(&counters, FATHOM_CNT_EVENTS_SENT);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
