/* Sizes and field offsets of bpf/policy.h as the C compiler lays them out; checked against
 * src/abi/policy.rs by its unit test. */
#include <stddef.h>
#include "fathom.h"

struct fathom_layout_entry {
	const char *name;
	unsigned long value;
};

#define SZ(s) { #s, sizeof(struct s) },
#define OFF(s, f) { #s "." #f, offsetof(struct s, f) },

const struct fathom_layout_entry fathom_policy_abi_layout[] = {
	SZ(fathom_policy_key)
	OFF(fathom_policy_key, prefixlen) OFF(fathom_policy_key, endpoint_id)
	OFF(fathom_policy_key, peer_identity) OFF(fathom_policy_key, direction)
	OFF(fathom_policy_key, protocol) OFF(fathom_policy_key, dport)
	SZ(fathom_policy_value)
	OFF(fathom_policy_value, action) OFF(fathom_policy_value, levels)
	OFF(fathom_policy_value, pad)
	OFF(fathom_policy_value, decision_id)
	SZ(fathom_ipcache_key)
	OFF(fathom_ipcache_key, prefixlen) OFF(fathom_ipcache_key, addr)
	SZ(fathom_ipcache_value)
	OFF(fathom_ipcache_value, identity) OFF(fathom_ipcache_value, pad)
	SZ(fathom_policy_endpoint)
	OFF(fathom_policy_endpoint, endpoint_id) OFF(fathom_policy_endpoint, flags)
	SZ(fathom_policy_endpoint_slot)
	OFF(fathom_policy_endpoint_slot, ifindex) OFF(fathom_policy_endpoint_slot, endpoint_id)
	SZ(fathom_policy_state)
	OFF(fathom_policy_state, generation) OFF(fathom_policy_state, pad)
	SZ(fathom_policy_ct_key)
	OFF(fathom_policy_ct_key, saddr) OFF(fathom_policy_ct_key, daddr)
	OFF(fathom_policy_ct_key, endpoint_id) OFF(fathom_policy_ct_key, sport)
	OFF(fathom_policy_ct_key, dport) OFF(fathom_policy_ct_key, proto)
	OFF(fathom_policy_ct_key, direction) OFF(fathom_policy_ct_key, pad)
	SZ(fathom_policy_ct_value)
	OFF(fathom_policy_ct_value, generation) OFF(fathom_policy_ct_value, decision_id)
	OFF(fathom_policy_ct_value, peer_identity) OFF(fathom_policy_ct_value, key_bits)
	OFF(fathom_policy_ct_value, action) OFF(fathom_policy_ct_value, flags)
	SZ(fathom_policy_counter)
	OFF(fathom_policy_counter, packets) OFF(fathom_policy_counter, bytes)
	SZ(fathom_policy_event)
	OFF(fathom_policy_event, type) OFF(fathom_policy_event, ifindex)
	OFF(fathom_policy_event, ts_ns) OFF(fathom_policy_event, endpoint_id)
	OFF(fathom_policy_event, peer_identity) OFF(fathom_policy_event, decision_id)
	OFF(fathom_policy_event, generation) OFF(fathom_policy_event, verdict)
	OFF(fathom_policy_event, action) OFF(fathom_policy_event, direction)
	OFF(fathom_policy_event, family) OFF(fathom_policy_event, proto)
	OFF(fathom_policy_event, icmp_type) OFF(fathom_policy_event, icmp_code)
	OFF(fathom_policy_event, pad) OFF(fathom_policy_event, sport)
	OFF(fathom_policy_event, dport) OFF(fathom_policy_event, len)
	OFF(fathom_policy_event, saddr) OFF(fathom_policy_event, daddr)
	{ "enum.FATHOM_POL_CNT_MAX", FATHOM_POL_CNT_MAX },
	{ "const.FATHOM_EV_POLICY_VERDICT", FATHOM_EV_POLICY_VERDICT },
	{ 0, 0 },
};
