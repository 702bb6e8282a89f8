// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * flow: per-flow L3/L4 accounting at TC (ingress + egress), observer only: every path returns
 * TC_ACT_UNSPEC so the packet continues as if we were not there.
 *
 * Each packet is counted once on the node, at the first watched point it crosses: a packet
 * forwarded from one watched interface to another (pod → bridge → pod, pod → NIC) is counted
 * at ingress and skipped at egress, recognised by skb->ingress_ifindex being a watched
 * interface. Loopback is counted at egress only (user space sets the per-interface flags).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "fathom.h"
#include "common.h"

#define TC_ACT_UNSPEC (-1)
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_SCTP_ 132
#define IPV6_MAX_EXT_HEADERS 8

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* user space resizes before load */
	__type(key, struct fathom_flow_key);
	__type(value, struct fathom_flow_value);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct fathom_watched_iface);
} watched_ifaces SEC(".maps");

/* Ports of fragmented datagrams, learnt from the first fragment, for the ones that follow. */
struct frag_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 id;
	__u8 proto;
	__u8 pad[3];
};

struct frag_ports {
	__u16 sport;
	__u16 dport;
	__u32 l4_hdr_len;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct frag_key);
	__type(value, struct frag_ports);
} frags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} flow_events SEC(".maps");

FATHOM_COUNTERS_MAP(counters);

/* A parsed packet: everything the accounting needs, nothing more. */
struct pkt {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 is_frag;
	__u8 first_frag;
	__u8 pad;
	__u32 frag_id;
	__u32 ip_len;     /* bytes of the IP packet (headers included) */
	__u32 hdr_len;    /* IP (with extensions) + L4 header bytes */
	__u32 payload;    /* L4 payload bytes */
};

enum parse_result {
	PARSE_OK = 0,
	PARSE_NON_IP,
	PARSE_MALFORMED,
	PARSE_TRUNCATED,
};


/* Returns the L4 header length (0 for protocols we do not parse) or a negated parse_result. */
static __always_inline int parse_l4(struct __sk_buff *skb, __u32 off, struct pkt *p)
{
	switch (p->proto) {
	case IPPROTO_TCP: {
		struct tcphdr th;
		if (bpf_skb_load_bytes(skb, off, &th, sizeof(th)))
			return -PARSE_TRUNCATED;
		if (th.doff < 5)
			return -PARSE_MALFORMED;
		p->sport = bpf_ntohs(th.source);
		p->dport = bpf_ntohs(th.dest);
		/* The flag byte follows the 4-bit data offset and reserved bits: byte 13. */
		p->tcp_flags = ((__u8 *)&th)[13];
		return th.doff * 4;
	}
	case IPPROTO_UDP: {
		struct udphdr uh;
		if (bpf_skb_load_bytes(skb, off, &uh, sizeof(uh)))
			return -PARSE_TRUNCATED;
		p->sport = bpf_ntohs(uh.source);
		p->dport = bpf_ntohs(uh.dest);
		return sizeof(uh);
	}
	case IPPROTO_SCTP_: {
		__be16 ports[2];
		if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)))
			return -PARSE_TRUNCATED;
		p->sport = bpf_ntohs(ports[0]);
		p->dport = bpf_ntohs(ports[1]);
		return 12;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6_: {
		__u8 h[8];
		if (bpf_skb_load_bytes(skb, off, h, sizeof(h)))
			return -PARSE_TRUNCATED;
		p->icmp_type = h[0];
		p->icmp_code = h[1];
		/* Echo request/reply: both directions share the identifier, use it as the "port". */
		if ((p->proto == IPPROTO_ICMP && (h[0] == 8 || h[0] == 0)) ||
		    (p->proto == IPPROTO_ICMPV6_ && (h[0] == 128 || h[0] == 129))) {
			__u16 id = ((__u16)h[4] << 8) | h[5];
			p->sport = id;
			p->dport = id;
		}
		return 8;
	}
	default:
		return 0;
	}
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, __u32 off, struct pkt *p, __u32 *l4off)
{
	struct iphdr ih;
	if (bpf_skb_load_bytes(skb, off, &ih, sizeof(ih)))
		return PARSE_TRUNCATED;
	if (ih.version != 4 || ih.ihl < 5)
		return PARSE_MALFORMED;
	__u32 ihl = ih.ihl * 4;
	__u32 tot = bpf_ntohs(ih.tot_len);
	__u32 avail = skb->len > off ? skb->len - off : 0;
	if (tot == 0 && skb->gso_segs > 1)
		tot = avail; /* BIG TCP: the length lives in the skb, not the header */
	if (tot < ihl)
		return PARSE_MALFORMED;
	if (tot > avail)
		return PARSE_TRUNCATED;
	if (ihl > avail)
		return PARSE_TRUNCATED;
	p->family = FATHOM_AF_INET;
	p->proto = ih.protocol;
	v4_mapped_addr(p->saddr, ih.saddr);
	v4_mapped_addr(p->daddr, ih.daddr);
	p->ip_len = tot;
	__u16 frag = bpf_ntohs(ih.frag_off);
	if (frag & 0x3fff) { /* MF set or offset != 0 */
		p->is_frag = 1;
		p->first_frag = (frag & 0x1fff) == 0;
		p->frag_id = bpf_ntohs(ih.id);
	}
	*l4off = off + ihl;
	return PARSE_OK;
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, __u32 off, struct pkt *p, __u32 *l4off)
{
	struct ipv6hdr ih;
	if (bpf_skb_load_bytes(skb, off, &ih, sizeof(ih)))
		return PARSE_TRUNCATED;
	if (ih.version != 6)
		return PARSE_MALFORMED;
	__u32 avail = skb->len > off ? skb->len - off : 0;
	__u32 tot = 40 + bpf_ntohs(ih.payload_len);
	if (tot == 40 && avail > 40 && skb->gso_segs > 1)
		tot = avail; /* BIG TCP / jumbogram */
	if (tot > avail)
		return PARSE_TRUNCATED;
	p->family = FATHOM_AF_INET6;
	__builtin_memcpy(p->saddr, &ih.saddr, 16);
	__builtin_memcpy(p->daddr, &ih.daddr, 16);
	p->ip_len = tot;
	__u8 nh = ih.nexthdr;
	__u32 pos = off + 40;
#pragma unroll
	for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
		if (nh == 0 || nh == 43 || nh == 60) { /* hop-by-hop, routing, destination options */
			__u8 ext[2];
			if (bpf_skb_load_bytes(skb, pos, ext, 2))
				return PARSE_TRUNCATED;
			nh = ext[0];
			pos += (ext[1] + 1) * 8;
		} else if (nh == 51) { /* AH: length in 4-octet units minus 2 */
			__u8 ext[2];
			if (bpf_skb_load_bytes(skb, pos, ext, 2))
				return PARSE_TRUNCATED;
			nh = ext[0];
			pos += (ext[1] + 2) * 4;
		} else if (nh == 44) { /* fragment */
			__u8 ext[8];
			if (bpf_skb_load_bytes(skb, pos, ext, 8))
				return PARSE_TRUNCATED;
			nh = ext[0];
			__u16 fo = ((__u16)ext[2] << 8) | ext[3];
			p->is_frag = 1;
			p->first_frag = (fo >> 3) == 0;
			p->frag_id = ((__u32)ext[4] << 24) | ((__u32)ext[5] << 16) | ((__u32)ext[6] << 8) | ext[7];
			pos += 8;
			if (!p->first_frag)
				break;
		} else {
			break;
		}
	}
	if (pos - off > tot)
		return PARSE_MALFORMED;
	p->proto = nh;
	*l4off = pos;
	return PARSE_OK;
}

static __always_inline int parse_packet(struct __sk_buff *skb, __u32 iface_flags, struct pkt *p)
{
	__u32 off = 0;
	__u16 eth_proto = bpf_ntohs(skb->protocol);

	if (iface_flags & FATHOM_IFACE_L2_ETHER) {
		struct ethhdr eh;
		if (bpf_skb_load_bytes(skb, 0, &eh, sizeof(eh)))
			return PARSE_TRUNCATED;
		eth_proto = bpf_ntohs(eh.h_proto);
		off = sizeof(eh);
#pragma unroll
		for (int i = 0; i < 2; i++) { /* 802.1Q, and QinQ's outer 802.1ad tag */
			if (eth_proto != ETH_P_8021Q && eth_proto != ETH_P_8021AD)
				break;
			__be16 vlan[2];
			if (bpf_skb_load_bytes(skb, off, vlan, sizeof(vlan)))
				return PARSE_TRUNCATED;
			eth_proto = bpf_ntohs(vlan[1]);
			off += 4;
		}
	}

	__u32 l4off = 0;
	int r;
	if (eth_proto == ETH_P_IP)
		r = parse_ipv4(skb, off, p, &l4off);
	else if (eth_proto == ETH_P_IPV6)
		r = parse_ipv6(skb, off, p, &l4off);
	else
		return PARSE_NON_IP;
	if (r != PARSE_OK)
		return r;

	__u32 l3hdr = l4off - off;
	if (p->is_frag)
		bump(&counters, FATHOM_CNT_FRAGMENTS);

	if (p->is_frag && !p->first_frag) {
		struct frag_key fk = {};
		__builtin_memcpy(fk.saddr, p->saddr, 16);
		__builtin_memcpy(fk.daddr, p->daddr, 16);
		fk.id = p->frag_id;
		fk.proto = p->proto;
		struct frag_ports *fp = bpf_map_lookup_elem(&frags, &fk);
		if (fp) {
			p->sport = fp->sport;
			p->dport = fp->dport;
		} else {
			bump(&counters, FATHOM_CNT_FRAG_UNKNOWN);
		}
		p->hdr_len = l3hdr;
		p->payload = p->ip_len - l3hdr;
		return PARSE_OK;
	}

	/* Header length, or a negated parse_result. */
	int l4 = parse_l4(skb, l4off, p);
	if (l4 < 0)
		return -l4;
	__u32 l4hdr = l4;
	if (l3hdr + l4hdr > p->ip_len)
		return p->is_frag ? PARSE_OK : PARSE_MALFORMED;
	p->hdr_len = l3hdr + l4hdr;
	p->payload = p->ip_len - p->hdr_len;

	if (p->is_frag && p->first_frag) {
		struct frag_key fk = {};
		__builtin_memcpy(fk.saddr, p->saddr, 16);
		__builtin_memcpy(fk.daddr, p->daddr, 16);
		fk.id = p->frag_id;
		fk.proto = p->proto;
		struct frag_ports fp = { .sport = p->sport, .dport = p->dport, .l4_hdr_len = l4hdr };
		bpf_map_update_elem(&frags, &fk, &fp, BPF_ANY);
	}
	return PARSE_OK;
}

/* Any total order will do as long as both directions agree on it. */
static __always_inline int addr_port_cmp(const __u8 *a, __u16 ap, const __u8 *b, __u16 bp)
{
	const __u32 *x = (const __u32 *)a;
	const __u32 *y = (const __u32 *)b;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	}
	if (ap != bp)
		return ap < bp ? -1 : 1;
	return 0;
}

/* Does the packet's sender look like the side that opened the conversation? */
static __always_inline int sender_is_initiator(const struct pkt *p)
{
	switch (p->proto) {
	case IPPROTO_TCP:
		if (p->tcp_flags & 0x02) /* SYN: without ACK the sender opens, with ACK it answers */
			return !(p->tcp_flags & 0x10);
		/* Mid-stream pickup: the ephemeral (higher) port is the client. */
		return p->sport >= p->dport;
	case IPPROTO_ICMP:
		return p->icmp_type != 0;
	case IPPROTO_ICMPV6_:
		return p->icmp_type != 129;
	default:
		/* A datagram from a well-known port to an ephemeral one is a reply. */
		return !(p->sport < 1024 && p->dport >= 1024);
	}
}

static __always_inline void emit(struct fathom_flow_key *key, struct fathom_flow_value *v, __u32 type, __u32 reason)
{
	struct fathom_flow_event *e = bpf_ringbuf_reserve(&flow_events, sizeof(*e), 0);
	if (!e) {
		bump(&counters, FATHOM_CNT_EVENTS_LOST);
		return;
	}
	e->type = type;
	e->end_reason = reason;
	e->ts_ns = bpf_ktime_get_boot_ns();
	__builtin_memcpy(&e->key, key, sizeof(*key));
	__builtin_memcpy(&e->value, v, sizeof(*v));
	bpf_ringbuf_submit(e, 0);
	bump(&counters, FATHOM_CNT_EVENTS_SENT);
}

static __always_inline void account(struct __sk_buff *skb, struct pkt *p)
{
	struct fathom_flow_key key = {};
	__u32 dir;
	if (addr_port_cmp(p->saddr, p->sport, p->daddr, p->dport) <= 0) {
		dir = 0;
		__builtin_memcpy(key.addr_lo, p->saddr, 16);
		__builtin_memcpy(key.addr_hi, p->daddr, 16);
		key.port_lo = p->sport;
		key.port_hi = p->dport;
	} else {
		dir = 1;
		__builtin_memcpy(key.addr_lo, p->daddr, 16);
		__builtin_memcpy(key.addr_hi, p->saddr, 16);
		key.port_lo = p->dport;
		key.port_hi = p->sport;
	}
	key.proto = p->proto;
	key.family = p->family;

	__u64 now = bpf_ktime_get_boot_ns();
	int created = 0;
	struct fathom_flow_value *v = bpf_map_lookup_elem(&flows, &key);
	/* A SYN on the tuple of a flow that already ended is a new connection reusing the ports
	 * (user space keeps ended entries for a moment to absorb late ACKs): start afresh. */
	__u64 update_flags = BPF_NOEXIST;
	if (v && p->proto == IPPROTO_TCP && (p->tcp_flags & 0x12) == 0x02 &&
	    (v->state & FATHOM_FLOW_END_SENT)) {
		v = 0;
		update_flags = BPF_ANY;
	}
	if (!v) {
		struct fathom_flow_value nv = {};
		nv.first_seen_ns = now;
		nv.last_seen_ns = now;
		nv.ifindex = skb->ifindex;
		nv.initiator = sender_is_initiator(p) ? dir : !dir;
		if (bpf_map_update_elem(&flows, &key, &nv, update_flags) == 0)
			created = 1; /* else another CPU created it first: use theirs */
		v = bpf_map_lookup_elem(&flows, &key);
		if (!v) {
			bump(&counters, FATHOM_CNT_FLOW_UPDATE_FAILED);
			return;
		}
		if (created)
			bump(&counters, FATHOM_CNT_FLOWS_CREATED);
	}

	/* A GSO super-packet stands for gso_segs wire packets, each with its own headers. */
	__u32 segs = skb->gso_segs > 1 ? skb->gso_segs : 1;
	__u64 bytes = p->ip_len + (__u64)(segs - 1) * p->hdr_len;
	dir &= 1;
	__sync_fetch_and_add(&v->packets[dir], segs);
	__sync_fetch_and_add(&v->bytes[dir], bytes);
	__sync_fetch_and_add(&v->payload_bytes[dir], p->payload);
	v->last_seen_ns = now;
	if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6_) {
		v->icmp_type = p->icmp_type;
		v->icmp_code = p->icmp_code;
	}
	if (!v->socket_cookie) {
		__u64 cookie = bpf_get_socket_cookie(skb);
		if (cookie)
			v->socket_cookie = cookie;
	}
	bump(&counters, FATHOM_CNT_PACKETS);

	if (created)
		emit(&key, v, FATHOM_EV_FLOW_START, 0);

	if (p->proto != IPPROTO_TCP)
		return;
	__sync_fetch_and_or(&v->tcp_flags[dir], p->tcp_flags);
	__u32 bits = 0;
	if (p->tcp_flags & 0x04)
		bits |= FATHOM_FLOW_RST;
	if (p->tcp_flags & 0x01)
		bits |= dir ? FATHOM_FLOW_FIN_HI : FATHOM_FLOW_FIN_LO;
	if (!bits)
		return;
	__u32 state = __sync_fetch_and_or(&v->state, bits) | bits;
	int ended = (state & FATHOM_FLOW_RST) ||
		    ((state & FATHOM_FLOW_FIN_LO) && (state & FATHOM_FLOW_FIN_HI));
	if (!ended || (state & FATHOM_FLOW_END_SENT))
		return;
	__u32 before = __sync_fetch_and_or(&v->state, FATHOM_FLOW_END_SENT);
	if (before & FATHOM_FLOW_END_SENT)
		return; /* another CPU reported the end */
	emit(&key, v, FATHOM_EV_FLOW_END, (state & FATHOM_FLOW_RST) ? FATHOM_END_RST : FATHOM_END_FIN);
}

static __always_inline int handle(struct __sk_buff *skb, int ingress)
{
	__u32 ifindex = skb->ifindex;
	struct fathom_watched_iface *w = bpf_map_lookup_elem(&watched_ifaces, &ifindex);
	/* Unknown interface (e.g. BPF_PROG_TEST_RUN on lo): Ethernet framing, count both ways. */
	__u32 flags = w ? w->flags
			: (FATHOM_IFACE_L2_ETHER | FATHOM_IFACE_COUNT_INGRESS | FATHOM_IFACE_COUNT_EGRESS);

	if (ingress && !(flags & FATHOM_IFACE_COUNT_INGRESS))
		return TC_ACT_UNSPEC;
	if (!ingress) {
		if (!(flags & FATHOM_IFACE_COUNT_EGRESS))
			return TC_ACT_UNSPEC;
		__u32 in = skb->ingress_ifindex;
		if (in && bpf_map_lookup_elem(&watched_ifaces, &in)) {
			bump(&counters, FATHOM_CNT_DUP_SKIPPED);
			return TC_ACT_UNSPEC;
		}
	}

	struct pkt p = {};
	switch (parse_packet(skb, flags, &p)) {
	case PARSE_OK:
		account(skb, &p);
		break;
	case PARSE_NON_IP:
		bump(&counters, FATHOM_CNT_NON_IP);
		break;
	case PARSE_MALFORMED:
		bump(&counters, FATHOM_CNT_MALFORMED);
		break;
	default:
		bump(&counters, FATHOM_CNT_TRUNCATED);
		break;
	}
	return TC_ACT_UNSPEC;
}

SEC("tcx/ingress")
int flow_ingress(struct __sk_buff *skb)
{
	return handle(skb, 1);
}

SEC("tcx/egress")
int flow_egress(struct __sk_buff *skb)
{
	return handle(skb, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
