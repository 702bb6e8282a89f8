// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * shield: the XDP program on ingress interfaces that drops attack traffic before the stack
 * allocates anything for it.
 *
 * Per packet, in this order:
 *   1. parse Ethernet (+ up to two VLAN tags) and the fixed IP header (source address);
 *   2. allowlist (LPM): a match passes at once, nothing below can drop it;
 *   3. blocklist (LPM): a match drops, unless the entry has expired (then it passes and user
 *      space reaps the entry);
 *   4. malformed packets: bad version/IHL, lengths beyond the frame, truncated L4 headers,
 *      impossible TCP flag combinations (SYN+FIN, SYN+RST, NULL, XMAS);
 *   5. per-source token buckets: every IP packet takes a packet token, a TCP SYN (without ACK)
 *      also takes a SYN token; an empty bucket drops.
 * In monitor mode every "drop" is counted and reported exactly the same, and the packet passes.
 *
 * Counters (per-CPU arrays, exact) are kept for every packet; drop events go to a ringbuf,
 * rate-limited per CPU, each carrying how many were suppressed before it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "fathom.h"
#include "common.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IPPROTO_ICMPV6_ 58
#define IPV6_MAX_EXT_HEADERS 6
#define NS_PER_TOKEN 1000000000ULL
#define REASON_NONE FATHOM_SHIELD_R_MAX

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_URG 0x20

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 262144); /* user space may resize before load */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fathom_shield_lpm_key);
	__type(value, struct fathom_shield_block);
} shield_blocklist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144); /* one per blocklist entry at most */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fathom_shield_lpm_key);
	__type(value, struct fathom_shield_note);
} shield_notes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fathom_shield_lpm_key);
	__type(value, struct fathom_shield_allow);
} shield_allowlist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fathom_shield_config);
} shield_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u8[16]);
	__type(value, struct fathom_shield_bucket);
} shield_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FATHOM_SHIELD_R_MAX);
	__type(key, __u32);
	__type(value, __u64);
} shield_drops SEC(".maps");

/* Two slots per protocol class: [2*i] packets, [2*i+1] bytes. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * FATHOM_SHIELD_P_MAX);
	__type(key, __u32);
	__type(value, __u64);
} shield_protos SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FATHOM_SHIELD_S_MAX);
	__type(key, __u32);
	__type(value, __u64);
} shield_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fathom_shield_event_limit);
} shield_event_limit SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} shield_events SEC(".maps");

/* What the checks need from a packet. */
struct spkt {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 family; /* 0: no IP source address could be read */
	__u8 proto;
	__u8 tcp_flags;
	__u8 pad;
};

static __always_inline void add(void *map, __u32 idx, __u64 v)
{
	__u64 *c = bpf_map_lookup_elem(map, &idx);
	if (c)
		*c += v;
}

/* TCP/UDP/ICMP header sanity over the `l4len` bytes the IP header says are there. */
static __always_inline __u32 check_l4(struct xdp_md *ctx, __u32 off, __u32 l4len, struct spkt *p)
{
	switch (p->proto) {
	case IPPROTO_TCP: {
		__u8 th[20];
		if (l4len < sizeof(th) || bpf_xdp_load_bytes(ctx, off, th, sizeof(th)))
			return FATHOM_SHIELD_R_L4_TRUNCATED;
		__u32 doff = (th[12] >> 4) * 4;
		if (doff < 20 || doff > l4len)
			return FATHOM_SHIELD_R_L4_TRUNCATED;
		p->sport = ((__u16)th[0] << 8) | th[1];
		p->dport = ((__u16)th[2] << 8) | th[3];
		__u8 f = th[13];
		p->tcp_flags = f;
		if ((f & (TCP_FIN | TCP_PSH | TCP_URG)) == (TCP_FIN | TCP_PSH | TCP_URG))
			return FATHOM_SHIELD_R_TCP_XMAS;
		if ((f & 0x3f) == 0)
			return FATHOM_SHIELD_R_TCP_NULL;
		if ((f & (TCP_SYN | TCP_FIN)) == (TCP_SYN | TCP_FIN))
			return FATHOM_SHIELD_R_TCP_SYN_FIN;
		if ((f & (TCP_SYN | TCP_RST)) == (TCP_SYN | TCP_RST))
			return FATHOM_SHIELD_R_TCP_SYN_RST;
		return REASON_NONE;
	}
	case IPPROTO_UDP: {
		__u8 uh[8];
		if (l4len < sizeof(uh) || bpf_xdp_load_bytes(ctx, off, uh, sizeof(uh)))
			return FATHOM_SHIELD_R_L4_TRUNCATED;
		p->sport = ((__u16)uh[0] << 8) | uh[1];
		p->dport = ((__u16)uh[2] << 8) | uh[3];
		return REASON_NONE;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6_:
		if (l4len < 8)
			return FATHOM_SHIELD_R_L4_TRUNCATED;
		return REASON_NONE;
	default:
		return REASON_NONE;
	}
}

static __always_inline __u32 parse_ipv4(struct xdp_md *ctx, __u32 off, __u32 frame_len, struct spkt *p)
{
	struct iphdr ih;
	if (bpf_xdp_load_bytes(ctx, off, &ih, sizeof(ih)))
		return FATHOM_SHIELD_R_IP_LENGTH;
	p->family = FATHOM_AF_INET;
	p->proto = ih.protocol;
	v4_mapped_addr(p->saddr, ih.saddr);
	v4_mapped_addr(p->daddr, ih.daddr);
	if (ih.version != 4 || ih.ihl < 5)
		return FATHOM_SHIELD_R_IP_HEADER;
	__u32 ihl = ih.ihl * 4;
	__u32 tot = bpf_ntohs(ih.tot_len);
	__u32 avail = frame_len - off; /* off + 20 <= frame_len: the load above succeeded */
	if (ihl > avail || tot < ihl || tot > avail)
		return FATHOM_SHIELD_R_IP_LENGTH;
	if (bpf_ntohs(ih.frag_off) & 0x1fff)
		return REASON_NONE; /* later fragment: no L4 header to check */
	return check_l4(ctx, off + ihl, tot - ihl, p);
}

static __always_inline __u32 parse_ipv6(struct xdp_md *ctx, __u32 off, __u32 frame_len, struct spkt *p)
{
	struct ipv6hdr ih;
	if (bpf_xdp_load_bytes(ctx, off, &ih, sizeof(ih)))
		return FATHOM_SHIELD_R_IP_LENGTH;
	p->family = FATHOM_AF_INET6;
	__builtin_memcpy(p->saddr, &ih.saddr, 16);
	__builtin_memcpy(p->daddr, &ih.daddr, 16);
	__u8 nh = ih.nexthdr;
	p->proto = nh;
	if (ih.version != 6)
		return FATHOM_SHIELD_R_IP_HEADER;
	__u32 tot = 40 + bpf_ntohs(ih.payload_len);
	if (tot > frame_len - off)
		return FATHOM_SHIELD_R_IP_LENGTH;
	__u32 pos = 40;
#pragma unroll
	for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
		__u8 ext[4];
		if (nh != 0 && nh != 43 && nh != 60 && nh != 51 && nh != 44)
			break;
		if (pos + 8 > tot || bpf_xdp_load_bytes(ctx, off + pos, ext, sizeof(ext)))
			return FATHOM_SHIELD_R_IP_LENGTH;
		if (nh == 44) { /* fragment: a later one carries no L4 header */
			if ((((__u16)ext[2] << 8) | ext[3]) >> 3) {
				p->proto = ext[0];
				return REASON_NONE;
			}
			pos += 8;
		} else if (nh == 51) {
			pos += (ext[1] + 2) * 4;
		} else {
			pos += (ext[1] + 1) * 8;
		}
		nh = ext[0];
	}
	p->proto = nh;
	if (pos > tot)
		return FATHOM_SHIELD_R_IP_LENGTH;
	return check_l4(ctx, off + pos, tot - pos, p);
}

static __always_inline __u32 proto_class(const struct spkt *p)
{
	if (!p->family)
		return FATHOM_SHIELD_P_OTHER_IP;
	switch (p->proto) {
	case IPPROTO_TCP:
		return FATHOM_SHIELD_P_TCP;
	case IPPROTO_UDP:
		return FATHOM_SHIELD_P_UDP;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6_:
		return FATHOM_SHIELD_P_ICMP;
	default:
		return FATHOM_SHIELD_P_OTHER_IP;
	}
}

/* Refill a bucket for `elapsed` ns at `rate`/s, up to `burst` tokens. Integer nano-tokens make
 * it exact: after `burst` packets at one instant the next is refused, and 1e9/rate ns later
 * exactly one more token is there. */
static __always_inline void refill(__u64 *tokens, __u64 elapsed, __u64 rate, __u64 burst)
{
	__u64 cap = burst * NS_PER_TOKEN;
	if (elapsed >= cap / rate) /* also keeps elapsed * rate below cap: no overflow */
		*tokens = cap;
	else if (*tokens + elapsed * rate >= cap)
		*tokens = cap;
	else
		*tokens += elapsed * rate;
}

static __always_inline int take(__u64 *tokens)
{
	if (*tokens < NS_PER_TOKEN)
		return 0;
	*tokens -= NS_PER_TOKEN;
	return 1;
}

static __always_inline __u32 rate_limit(const struct fathom_shield_config *cfg, const struct spkt *p, __u64 now)
{
	int syn = p->proto == IPPROTO_TCP && (p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
	int pkt_on = cfg->pkt_rate && cfg->pkt_burst;
	int syn_on = cfg->syn_rate && cfg->syn_burst;
	if (!pkt_on && !(syn && syn_on))
		return REASON_NONE;
	struct fathom_shield_bucket *b = bpf_map_lookup_elem(&shield_buckets, p->saddr);
	if (!b) {
		/* A new source starts with full buckets. */
		struct fathom_shield_bucket init = {
			.last_ns = now,
			.syn_tokens = cfg->syn_burst * NS_PER_TOKEN,
			.pkt_tokens = cfg->pkt_burst * NS_PER_TOKEN,
		};
		if (bpf_map_update_elem(&shield_buckets, p->saddr, &init, BPF_NOEXIST) &&
		    bpf_map_update_elem(&shield_buckets, p->saddr, &init, BPF_ANY)) {
			bump(&shield_stats, FATHOM_SHIELD_S_BUCKETS_FULL);
			return REASON_NONE;
		}
		b = bpf_map_lookup_elem(&shield_buckets, p->saddr);
		if (!b)
			return REASON_NONE;
	}
	/* Buckets are shared by CPUs without a lock: concurrent packets of one source may race on
	 * the read-modify-write, which can only let a few extra packets through, never drop more. */
	__u64 elapsed = now > b->last_ns ? now - b->last_ns : 0;
	b->last_ns = now;
	if (pkt_on)
		refill(&b->pkt_tokens, elapsed, cfg->pkt_rate, cfg->pkt_burst);
	if (syn_on)
		refill(&b->syn_tokens, elapsed, cfg->syn_rate, cfg->syn_burst);
	if (pkt_on && !take(&b->pkt_tokens))
		return FATHOM_SHIELD_R_PKT_RATE;
	if (syn && syn_on && !take(&b->syn_tokens))
		return FATHOM_SHIELD_R_SYN_RATE;
	return REASON_NONE;
}

/* Returns the number of suppressed events to report, or -1 when this one is suppressed. */
static __always_inline int event_budget(const struct fathom_shield_config *cfg, __u64 now)
{
	__u32 zero = 0;
	struct fathom_shield_event_limit *l = bpf_map_lookup_elem(&shield_event_limit, &zero);
	if (!l || !cfg->events_per_sec)
		return -1;
	if (now - l->window_start_ns >= 1000000000ULL || now < l->window_start_ns) {
		__u32 s = l->suppressed;
		l->window_start_ns = now;
		l->emitted = 1;
		l->suppressed = 0;
		return s;
	}
	if (l->emitted < cfg->events_per_sec) {
		__u32 s = l->suppressed;
		l->emitted++;
		l->suppressed = 0;
		return s;
	}
	l->suppressed++;
	return -1;
}

static __always_inline int verdict(struct xdp_md *ctx, const struct fathom_shield_config *cfg,
				   const struct spkt *p, __u32 reason, __u32 len, __u64 now)
{
	int monitor = cfg->mode == FATHOM_SHIELD_MONITOR;
	bump(&shield_drops, reason);
	bump(&shield_stats, monitor ? FATHOM_SHIELD_S_MONITORED : FATHOM_SHIELD_S_DROPPED);

	int suppressed = event_budget(cfg, now);
	if (suppressed < 0) {
		bump(&shield_stats, FATHOM_SHIELD_S_EVENTS_SUPPRESSED);
	} else {
		struct fathom_shield_event *e = bpf_ringbuf_reserve(&shield_events, sizeof(*e), 0);
		if (!e) {
			bump(&shield_stats, FATHOM_SHIELD_S_EVENTS_LOST);
		} else {
			__builtin_memset(e, 0, sizeof(*e));
			e->type = FATHOM_EV_SHIELD_DROP;
			e->reason = reason;
			e->ts_ns = now;
			e->ifindex = ctx->ingress_ifindex;
			e->suppressed = suppressed;
			e->len = len;
			e->family = p->family;
			e->proto = p->proto;
			e->tcp_flags = p->tcp_flags;
			e->monitor = monitor;
			e->sport = p->sport;
			e->dport = p->dport;
			__builtin_memcpy(e->saddr, p->saddr, 16);
			__builtin_memcpy(e->daddr, p->daddr, 16);
			bpf_ringbuf_submit(e, 0);
			bump(&shield_stats, FATHOM_SHIELD_S_EVENTS_SENT);
		}
	}
	return monitor ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int shield_xdp(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct fathom_shield_config *cfg = bpf_map_lookup_elem(&shield_config, &zero);
	if (!cfg)
		return XDP_PASS;
	__u32 len = bpf_xdp_get_buff_len(ctx);

	struct ethhdr eh;
	if (bpf_xdp_load_bytes(ctx, 0, &eh, sizeof(eh)))
		return XDP_PASS;
	__u16 eth_proto = bpf_ntohs(eh.h_proto);
	__u32 off = sizeof(eh);
#pragma unroll
	for (int i = 0; i < 2; i++) { /* 802.1Q, and QinQ's outer 802.1ad tag */
		if (eth_proto != ETH_P_8021Q && eth_proto != ETH_P_8021AD)
			break;
		__be16 vlan[2];
		if (bpf_xdp_load_bytes(ctx, off, vlan, sizeof(vlan)))
			break;
		eth_proto = bpf_ntohs(vlan[1]);
		off += 4;
	}

	struct spkt p = {};
	__u32 bad;
	if (eth_proto == ETH_P_IP) {
		bad = parse_ipv4(ctx, off, len, &p);
	} else if (eth_proto == ETH_P_IPV6) {
		bad = parse_ipv6(ctx, off, len, &p);
	} else {
		add(&shield_protos, 2 * FATHOM_SHIELD_P_NON_IP, 1);
		add(&shield_protos, 2 * FATHOM_SHIELD_P_NON_IP + 1, len);
		bump(&shield_stats, FATHOM_SHIELD_S_PASSED);
		return XDP_PASS;
	}
	__u32 pc = proto_class(&p);
	add(&shield_protos, 2 * pc, 1);
	add(&shield_protos, 2 * pc + 1, len);

	__u64 now = cfg->clock_ns ? cfg->clock_ns : bpf_ktime_get_boot_ns();
	if (p.family) {
		struct fathom_shield_lpm_key key = { .prefixlen = 128 };
		__builtin_memcpy(key.addr, p.saddr, 16);
		if (bpf_map_lookup_elem(&shield_allowlist, &key)) {
			bump(&shield_stats, FATHOM_SHIELD_S_ALLOWLISTED);
			return XDP_PASS;
		}
		struct fathom_shield_block *blk = bpf_map_lookup_elem(&shield_blocklist, &key);
		if (blk) {
			if (blk->expires_ns && now >= blk->expires_ns)
				bump(&shield_stats, FATHOM_SHIELD_S_BLOCK_EXPIRED);
			else
				return verdict(ctx, cfg, &p, FATHOM_SHIELD_R_BLOCKLIST, len, now);
		}
	}
	if (bad != REASON_NONE)
		return verdict(ctx, cfg, &p, bad, len, now);
	__u32 limited = rate_limit(cfg, &p, now);
	if (limited != REASON_NONE)
		return verdict(ctx, cfg, &p, limited, len, now);
	bump(&shield_stats, FATHOM_SHIELD_S_PASSED);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
