// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * policy: identity-aware network policy at TC on each endpoint's host-side interface.
 *
 *   TC ingress of the host-side veth = the pod sends    = the pod's EGRESS,  peer = daddr
 *   TC egress  of the host-side veth = the pod receives = the pod's INGRESS, peer = saddr
 *
 * Per packet: endpoint of skb->ifindex (endpoint_of; not there: not ours, pass). Conntrack
 * first: a packet of a connection already decided in this generation takes that decision (and
 * is counted under it); a reply of an allowed connection passes. Otherwise the connection is
 * new: peer identity = exact ipcache hash(peer address), else the ipcache LPM (CIDRs); then
 * the policy hash: the root entry of (endpoint, peer), else of (endpoint, any peer), whose
 * `levels` say which longer keys exist; those are probed longest first (exact port, 256-port
 * block or ICMP type, protocol). At most five hash lookups, whatever the number of rules (an
 * LPM trie's cost grows with its depth). The compiler (fathom-policy) folded deny-wins, audit
 * and default deny into every entry, so the longest hit is final; no root means no policy
 * selects the endpoint in that direction: allow. The verdict goes into the conntrack and out as ONE event per
 * connection and generation; per-decision counters count every packet.
 *
 * Atomic updates: two slots of (policy, ipcache) maps and one 4-byte generation in an array;
 * slot = generation & 1. A packet reads the generation once and uses that slot for every
 * lookup, so it sees one whole policy. User space rewrites only the standby slot, then bumps
 * the generation (one aligned 4-byte store), and rewrites that slot again only on the next
 * apply, long after every program run that could have read the old generation has finished
 * (a run takes microseconds; user space also waits a grace period before reusing a slot).
 * Map-in-map (outer array of inner tries swapped in) would give the same guarantee but needs
 * two swaps (policy and ipcache) that cannot be made atomic together without a third level,
 * plus creating maps at run time; two static slots keep the program and the loader simple and
 * let the verifier see concrete maps. Conntrack entries carry the generation they were
 * decided in: after an apply, a connection's next packet is decided again under the new
 * policy (established connections do not keep rights the new policy takes away).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "fathom.h"
#include "common.h"

#define TC_ACT_UNSPEC (-1)
#define TC_ACT_SHOT 2
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_SCTP_ 132
#define IPV6_MAX_EXT_HEADERS 6

/* Benchmarks only (PolicyConfig::conntrack = false): judge every packet as a new connection,
 * so BPF_PROG_TEST_RUN with repeat measures the policy lookup itself. */
const volatile __u8 conntrack_disabled = 0;

/* Sizes: user space sets them before load (PolicyConfig). Not preallocated: memory follows
 * the entries written (2 slots x 64k entries would otherwise be taken at load on every node);
 * lookups cost the same. */
#define POLICY_HASH(name)                                         \
	struct {                                                  \
		__uint(type, BPF_MAP_TYPE_HASH);                  \
		__uint(max_entries, 65536);                       \
		__uint(map_flags, BPF_F_NO_PREALLOC);             \
		__type(key, struct fathom_policy_key);            \
		__type(value, struct fathom_policy_value);        \
	} name SEC(".maps")
#define IPCACHE_TRIE(name)                                        \
	struct {                                                  \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);              \
		__uint(max_entries, 65536);                       \
		__uint(map_flags, BPF_F_NO_PREALLOC);             \
		__type(key, struct fathom_ipcache_key);           \
		__type(value, struct fathom_ipcache_value);       \
	} name SEC(".maps")
#define IPCACHE_EXACT(name)                                       \
	struct {                                                  \
		__uint(type, BPF_MAP_TYPE_HASH);                  \
		__uint(max_entries, 65536);                       \
		__uint(map_flags, BPF_F_NO_PREALLOC);             \
		__uint(key_size, 16);                             \
		__type(value, struct fathom_ipcache_value);       \
	} name SEC(".maps")

POLICY_HASH(policy_rules0);
POLICY_HASH(policy_rules1);
IPCACHE_TRIE(policy_ipcache0);
IPCACHE_TRIE(policy_ipcache1);
IPCACHE_EXACT(policy_ipcache_exact0);
IPCACHE_EXACT(policy_ipcache_exact1);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fathom_policy_state);
} policy_state SEC(".maps");

/* The endpoint of an interface: its slot in policy_endpoint_slots (an array lookup, inlined
 * by the verifier), else policy_endpoints (a hash: a call and a jhash, about a sixth of the
 * per-packet cost), which holds only the interfaces whose slot another one took. Every
 * packet asks, so the common case is the array. */
const volatile __u32 endpoint_slot_mask = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fathom_policy_endpoint_slot);
} policy_endpoint_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* ifindex */
	__type(value, struct fathom_policy_endpoint);
} policy_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fathom_policy_ct_key);
	__type(value, struct fathom_policy_ct_value);
} policy_ct SEC(".maps");

/* Per-decision counters at slot * counter_slot_entries + decision_id (user space sets both
 * sizes and refuses a policy whose decision ids do not fit). An array, not a hash keyed by
 * (slot, decision): the verifier inlines an array lookup, a hash lookup is a call and a jhash,
 * about as much as the rest of the counting path. */
const volatile __u32 counter_slot_entries = 1;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct fathom_policy_counter);
} policy_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FATHOM_POL_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} policy_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} policy_events SEC(".maps");

struct pkt {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 key_bits;
	__u8 proto;
	__u8 family;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 later_frag;
	__u8 pad;
};

enum parse_result {
	PARSE_OK = 0,
	PARSE_NON_IP,
	PARSE_BAD,
};

/* The endpoint behind ifindex; false: not one of ours. */
static __always_inline bool endpoint_of(__u32 ifindex, __u32 *ep)
{
	__u32 i = ifindex & endpoint_slot_mask;
	struct fathom_policy_endpoint_slot *s = bpf_map_lookup_elem(&policy_endpoint_slots, &i);
	if (s && s->ifindex == ifindex) {
		*ep = s->endpoint_id;
		return true;
	}
	struct fathom_policy_endpoint *v = bpf_map_lookup_elem(&policy_endpoints, &ifindex);
	if (!v)
		return false;
	*ep = v->endpoint_id;
	return true;
}

static __always_inline void stat(__u32 idx)
{
	bump(&policy_stats, idx);
}

/* The len bytes at off: a pointer into the linear packet data when they are there (no copy, no
 * helper call; the common case), else to buf filled by bpf_skb_load_bytes (non-linear skbs);
 * NULL when the packet is shorter. Same bytes, same errors either way. Callers read fields
 * through a typed pointer, so the compiler loads words; a memcpy out of the packet, whose
 * alignment it cannot know, was compiled into one load per byte. */
#define LOAD_DIRECT_MAX_OFF 512
static __always_inline const void *header(struct __sk_buff *skb, __u32 off, void *buf,
					  const __u32 len)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	if (off <= LOAD_DIRECT_MAX_OFF) {
		void *at = data + off;
		if (at + len <= data_end)
			return at;
	}
	if (bpf_skb_load_bytes(skb, off, buf, len))
		return NULL;
	return buf;
}

static __always_inline int parse_l4(struct __sk_buff *skb, __u32 off, struct pkt *p)
{
	switch (p->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP_: {
		/* The three share the port layout: source, destination, first 4 bytes. */
		__be16 buf[2];
		const __be16 *ports = header(skb, off, buf, sizeof(buf));
		if (!ports)
			return PARSE_BAD;
		p->sport = bpf_ntohs(ports[0]);
		p->dport = bpf_ntohs(ports[1]);
		p->key_bits = p->dport;
		return PARSE_OK;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6_: {
		__u8 buf[8];
		const __u8 *h = header(skb, off, buf, sizeof(buf));
		if (!h)
			return PARSE_BAD;
		__u8 type = h[0];
		p->icmp_type = type;
		p->icmp_code = h[1];
		p->key_bits = ((__u16)type << 8) | h[1];
		/* Echo request and reply share the identifier: both "ports" hold it, so the
		 * conntrack key of the reply is the request's reversed. */
		if ((p->proto == IPPROTO_ICMP && (type == 8 || type == 0)) ||
		    (p->proto == IPPROTO_ICMPV6_ && (type == 128 || type == 129))) {
			__u16 id = ((__u16)h[4] << 8) | h[5];
			p->sport = id;
			p->dport = id;
		}
		return PARSE_OK;
	}
	default:
		return PARSE_OK; /* other protocols: matched by protocol only */
	}
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, __u32 off, struct pkt *p)
{
	struct iphdr buf;
	const struct iphdr *ih = header(skb, off, &buf, sizeof(buf));
	if (!ih)
		return PARSE_BAD;
	if (ih->version != 4 || ih->ihl < 5)
		return PARSE_BAD;
	__u32 l4 = off + ih->ihl * 4;
	p->family = FATHOM_AF_INET;
	p->proto = ih->protocol;
	v4_mapped_addr(p->saddr, ih->saddr);
	v4_mapped_addr(p->daddr, ih->daddr);
	if (bpf_ntohs(ih->frag_off) & 0x1fff) {
		p->later_frag = 1;
		return PARSE_OK;
	}
	return parse_l4(skb, l4, p);
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, __u32 off, struct pkt *p)
{
	struct ipv6hdr buf;
	const struct ipv6hdr *ih = header(skb, off, &buf, sizeof(buf));
	if (!ih)
		return PARSE_BAD;
	if (ih->version != 6)
		return PARSE_BAD;
	p->family = FATHOM_AF_INET6;
	__builtin_memcpy(p->saddr, &ih->saddr, 16);
	__builtin_memcpy(p->daddr, &ih->daddr, 16);
	__u8 nh = ih->nexthdr;
	__u32 pos = off + 40;
#pragma unroll
	for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
		__u8 ebuf[4];
		if (nh == 0 || nh == 43 || nh == 60) { /* hop-by-hop, routing, destination options */
			const __u8 *ext = header(skb, pos, ebuf, 2);
			if (!ext)
				return PARSE_BAD;
			nh = ext[0];
			pos += (ext[1] + 1) * 8;
		} else if (nh == 51) { /* AH */
			const __u8 *ext = header(skb, pos, ebuf, 2);
			if (!ext)
				return PARSE_BAD;
			nh = ext[0];
			pos += (ext[1] + 2) * 4;
		} else if (nh == 44) { /* fragment */
			const __u8 *ext = header(skb, pos, ebuf, 4);
			if (!ext)
				return PARSE_BAD;
			nh = ext[0];
			pos += 8;
			if ((((__u16)ext[2] << 8) | ext[3]) >> 3) {
				p->proto = nh;
				p->later_frag = 1;
				return PARSE_OK;
			}
		} else {
			break;
		}
	}
	p->proto = nh;
	return parse_l4(skb, pos, p);
}

static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
	/* Endpoint interfaces are veths: Ethernet framing. */
	struct ethhdr buf;
	const struct ethhdr *eh = header(skb, 0, &buf, sizeof(buf));
	if (!eh)
		return PARSE_NON_IP;
	__u16 proto = bpf_ntohs(eh->h_proto);
	if (proto == ETH_P_IP)
		return parse_ipv4(skb, sizeof(buf), p);
	if (proto == ETH_P_IPV6)
		return parse_ipv6(skb, sizeof(buf), p);
	return PARSE_NON_IP;
}

static __always_inline __u32 peer_identity(void *exact, void *trie, const __u8 *addr)
{
	struct fathom_ipcache_key k = { .prefixlen = 128 };
	__builtin_memcpy(k.addr, addr, 16);
	/* Pod and host addresses: one hash lookup. */
	struct fathom_ipcache_value *v = bpf_map_lookup_elem(exact, k.addr);
	if (v)
		return v->identity;
	v = bpf_map_lookup_elem(trie, &k);
	return v ? v->identity : 2; /* world; cannot happen: user space always installs /0 */
}

/* The verdict of a new connection: fills ct (action, decision, peer). */
static __always_inline void decide(void *rules, __u32 ep, __u8 dir, __u32 peer, __u8 proto,
				   __u16 key_bits, struct fathom_policy_ct_value *ct)
{
	struct fathom_policy_key k = {
		.prefixlen = FATHOM_POLICY_KEY_ROOT,
		.endpoint_id = ep,
		.peer_identity = peer,
		.direction = dir,
	};
	ct->peer_identity = peer;
	ct->key_bits = key_bits;
	ct->action = FATHOM_POLICY_ALLOW;
	ct->decision_id = 0;
	/* The root of the peer's entries; a peer no rule names has none: the wildcard's. Every
	 * set of entries has a root, so there is never a second fallback. */
	struct fathom_policy_value *v = bpf_map_lookup_elem(rules, &k);
	if (!v) {
		k.peer_identity = 0;
		v = bpf_map_lookup_elem(rules, &k);
		if (!v)
			return; /* no policy selects the endpoint in this direction */
	}
	__u8 levels = v->levels;
	struct fathom_policy_value *hit = NULL;
	k.protocol = proto;
	if (levels & FATHOM_POLICY_LEVEL_EXACT) {
		k.prefixlen = FATHOM_POLICY_KEY_EXACT;
		k.dport = bpf_htons(key_bits);
		hit = bpf_map_lookup_elem(rules, &k);
	}
	if (!hit && (levels & FATHOM_POLICY_LEVEL_BLOCK)) {
		k.prefixlen = FATHOM_POLICY_KEY_BLOCK;
		k.dport = bpf_htons(key_bits & 0xff00);
		hit = bpf_map_lookup_elem(rules, &k);
	}
	if (!hit && (levels & FATHOM_POLICY_LEVEL_PROTO)) {
		k.prefixlen = FATHOM_POLICY_KEY_PROTO;
		k.dport = 0;
		hit = bpf_map_lookup_elem(rules, &k);
	}
	if (hit)
		v = hit;
	ct->action = v->action;
	ct->decision_id = v->decision_id;
	if (!ct->decision_id)
		ct->action = FATHOM_POLICY_ALLOW;
}

/* peer_identity + decide in one slot's maps. The two slots are two copies of the code, each
 * naming its maps directly: a lookup call site that may see either of two maps (a merged call
 * on a selected pointer) is not inlined by the verifier and goes through the generic helper
 * and an indirect call. */
static __always_inline void judge(__u32 slot, __u32 ep, __u8 dir, const __u8 *peer_addr,
				  __u8 proto, __u16 key_bits, struct fathom_policy_ct_value *ct)
{
	if (slot) {
		__u32 peer = peer_identity(&policy_ipcache_exact1, &policy_ipcache1, peer_addr);
		decide(&policy_rules1, ep, dir, peer, proto, key_bits, ct);
	} else {
		__u32 peer = peer_identity(&policy_ipcache_exact0, &policy_ipcache0, peer_addr);
		decide(&policy_rules0, ep, dir, peer, proto, key_bits, ct);
	}
}

static __always_inline void count(__u32 slot, __u32 decision, __u32 len)
{
	if (!decision || decision >= counter_slot_entries)
		return;
	__u32 idx = (slot ? counter_slot_entries : 0) + decision;
	struct fathom_policy_counter *c = bpf_map_lookup_elem(&policy_counters, &idx);
	if (c) {
		c->packets += 1;
		c->bytes += len;
	}
}

static __always_inline __u8 verdict_of(__u8 action)
{
	if (action == FATHOM_POLICY_DENY)
		return FATHOM_VERDICT_DROPPED;
	if (action == FATHOM_POLICY_AUDIT)
		return FATHOM_VERDICT_AUDIT;
	return FATHOM_VERDICT_FORWARDED;
}

static __always_inline void emit(struct __sk_buff *skb, const struct pkt *p, __u32 ep, __u8 dir,
				 __u32 generation, const struct fathom_policy_ct_value *ct)
{
	struct fathom_policy_event *e = bpf_ringbuf_reserve(&policy_events, sizeof(*e), 0);
	if (!e) {
		stat(FATHOM_POL_EVENTS_LOST);
		return;
	}
	e->type = FATHOM_EV_POLICY_VERDICT;
	e->ifindex = skb->ifindex;
	e->ts_ns = bpf_ktime_get_ns();
	e->endpoint_id = ep;
	e->peer_identity = ct->peer_identity;
	e->decision_id = ct->decision_id;
	e->generation = generation;
	e->verdict = verdict_of(ct->action);
	e->action = ct->decision_id ? ct->action : 0;
	e->direction = dir;
	e->family = p->family;
	e->proto = p->proto;
	e->icmp_type = p->icmp_type;
	e->icmp_code = p->icmp_code;
	e->pad = 0;
	e->sport = p->sport;
	e->dport = p->dport;
	e->len = skb->len;
	__builtin_memcpy(e->saddr, p->saddr, 16);
	__builtin_memcpy(e->daddr, p->daddr, 16);
	bpf_ringbuf_submit(e, 0);
	stat(FATHOM_POL_EVENTS_SENT);
}

static __always_inline int finish(__u8 action)
{
	if (action == FATHOM_POLICY_DENY) {
		stat(FATHOM_POL_DROPPED);
		return TC_ACT_SHOT;
	}
	stat(action == FATHOM_POLICY_AUDIT ? FATHOM_POL_AUDITED : FATHOM_POL_FORWARDED);
	return TC_ACT_UNSPEC;
}

static __always_inline int handle(struct __sk_buff *skb, __u8 dir)
{
	__u32 ep;
	if (!endpoint_of(skb->ifindex, &ep)) {
		stat(FATHOM_POL_UNMANAGED);
		return TC_ACT_UNSPEC;
	}
	__u32 zero = 0;
	struct fathom_policy_state *st = bpf_map_lookup_elem(&policy_state, &zero);
	if (!st)
		return TC_ACT_UNSPEC;
	__u32 generation = st->generation;
	__u32 slot = generation & 1;
	stat(FATHOM_POL_PACKETS);

	struct pkt p = {};
	int r = parse(skb, &p);
	if (r == PARSE_NON_IP) {
		stat(FATHOM_POL_NON_IP);
		return TC_ACT_UNSPEC;
	}
	if (r != PARSE_OK) {
		stat(FATHOM_POL_MALFORMED);
		return TC_ACT_SHOT;
	}
	if (p.later_frag) {
		/* No L4 header to judge; the first fragment was judged, and without it the datagram
		 * never reassembles. */
		stat(FATHOM_POL_FRAG_PASSED);
		return TC_ACT_UNSPEC;
	}
	if (p.proto == IPPROTO_ICMPV6_ && p.icmp_type >= 133 && p.icmp_type <= 136) {
		/* Router/neighbour discovery keeps IPv6 working at all; policy is about traffic. */
		stat(FATHOM_POL_ND_PASSED);
		return TC_ACT_UNSPEC;
	}

	struct fathom_policy_ct_key fwd = {
		.endpoint_id = ep,
		.sport = p.sport,
		.dport = p.dport,
		.proto = p.proto,
		.direction = dir,
	};
	__builtin_memcpy(fwd.saddr, p.saddr, 16);
	__builtin_memcpy(fwd.daddr, p.daddr, 16);

	struct fathom_policy_ct_value *ct = conntrack_disabled ? NULL : bpf_map_lookup_elem(&policy_ct, &fwd);
	if (ct && ct->generation == generation) {
		stat(FATHOM_POL_CT_ESTABLISHED);
		count(slot, ct->decision_id, skb->len);
		return finish(ct->action);
	}
	if (!ct && !conntrack_disabled) {
		/* A reply: the reversed tuple was opened in the other direction at this endpoint. */
		struct fathom_policy_ct_key rev = {
			.endpoint_id = ep,
			.sport = p.dport,
			.dport = p.sport,
			.proto = p.proto,
			.direction = dir ^ 1,
		};
		__builtin_memcpy(rev.saddr, p.daddr, 16);
		__builtin_memcpy(rev.daddr, p.saddr, 16);
		struct fathom_policy_ct_value *orig = bpf_map_lookup_elem(&policy_ct, &rev);
		if (orig) {
			if (orig->generation != generation) {
				/* Decided under an older policy: decide the connection again, from its
				 * first packet's point of view, before letting replies through. */
				struct fathom_policy_ct_value again = {};
				const __u8 *peer_addr = rev.direction == FATHOM_POLICY_EGRESS ? rev.daddr : rev.saddr;
				judge(slot, ep, rev.direction, peer_addr, rev.proto, orig->key_bits, &again);
				again.generation = generation;
				bpf_map_update_elem(&policy_ct, &rev, &again, BPF_ANY);
				orig = bpf_map_lookup_elem(&policy_ct, &rev);
				if (!orig)
					return TC_ACT_SHOT;
			}
			if (orig->action != FATHOM_POLICY_DENY) {
				stat(FATHOM_POL_CT_REPLY);
				count(slot, orig->decision_id, skb->len);
				stat(FATHOM_POL_FORWARDED);
				return TC_ACT_UNSPEC;
			}
			/* The connection is denied: this packet is judged on its own below. */
		}
	}

	/* New connection (or an old one under a new generation). */
	stat(FATHOM_POL_CT_NEW);
	struct fathom_policy_ct_value v = {};
	judge(slot, ep, dir, dir == FATHOM_POLICY_EGRESS ? p.daddr : p.saddr, p.proto, p.key_bits, &v);
	v.generation = generation;
	v.flags = FATHOM_POLICY_CT_EVENT_SENT;
	if (conntrack_disabled) {
		count(slot, v.decision_id, skb->len);
		return finish(v.action);
	}
	bpf_map_update_elem(&policy_ct, &fwd, &v, BPF_ANY);
	count(slot, v.decision_id, skb->len);
	if (v.decision_id)
		emit(skb, &p, ep, dir, generation, &v);
	return finish(v.action);
}

SEC("tcx/ingress")
int policy_from_endpoint(struct __sk_buff *skb)
{
	return handle(skb, FATHOM_POLICY_EGRESS);
}

SEC("tcx/egress")
int policy_to_endpoint(struct __sk_buff *skb)
{
	return handle(skb, FATHOM_POLICY_INGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
