/* Sizes and field offsets of bpf/fathom.h as the C compiler lays them out. The Rust mirror
 * (src/abi.rs) is checked against this table by a unit test. */
#include <stddef.h>
#include "fathom.h"

struct fathom_layout_entry {
	const char *name;
	unsigned long value;
};

#define SZ(s) { #s, sizeof(struct s) },
#define OFF(s, f) { #s "." #f, offsetof(struct s, f) },

const struct fathom_layout_entry fathom_abi_layout[] = {
	SZ(fathom_flow_key)
	OFF(fathom_flow_key, addr_lo) OFF(fathom_flow_key, addr_hi) OFF(fathom_flow_key, port_lo)
	OFF(fathom_flow_key, port_hi) OFF(fathom_flow_key, proto) OFF(fathom_flow_key, family)
	OFF(fathom_flow_key, pad)
	SZ(fathom_flow_value)
	OFF(fathom_flow_value, first_seen_ns) OFF(fathom_flow_value, last_seen_ns)
	OFF(fathom_flow_value, packets) OFF(fathom_flow_value, bytes)
	OFF(fathom_flow_value, payload_bytes) OFF(fathom_flow_value, socket_cookie)
	OFF(fathom_flow_value, tcp_flags) OFF(fathom_flow_value, state)
	OFF(fathom_flow_value, ifindex) OFF(fathom_flow_value, initiator)
	OFF(fathom_flow_value, icmp_type) OFF(fathom_flow_value, icmp_code) OFF(fathom_flow_value, pad)
	SZ(fathom_flow_event)
	OFF(fathom_flow_event, type) OFF(fathom_flow_event, end_reason) OFF(fathom_flow_event, ts_ns)
	OFF(fathom_flow_event, key) OFF(fathom_flow_event, value)
	SZ(fathom_watched_iface)
	OFF(fathom_watched_iface, flags) OFF(fathom_watched_iface, pad)
	SZ(fathom_sock_event)
	OFF(fathom_sock_event, type) OFF(fathom_sock_event, pid) OFF(fathom_sock_event, tid)
	OFF(fathom_sock_event, family) OFF(fathom_sock_event, proto) OFF(fathom_sock_event, failed)
	OFF(fathom_sock_event, pad0) OFF(fathom_sock_event, local_addr)
	OFF(fathom_sock_event, remote_addr) OFF(fathom_sock_event, local_port)
	OFF(fathom_sock_event, remote_port) OFF(fathom_sock_event, srtt_us)
	OFF(fathom_sock_event, cgroup_id) OFF(fathom_sock_event, cookie) OFF(fathom_sock_event, ts_ns)
	OFF(fathom_sock_event, handshake_ns) OFF(fathom_sock_event, bytes_acked)
	OFF(fathom_sock_event, bytes_received) OFF(fathom_sock_event, retransmits)
	OFF(fathom_sock_event, pad1) OFF(fathom_sock_event, comm)
	SZ(fathom_proc_event)
	OFF(fathom_proc_event, type) OFF(fathom_proc_event, pid) OFF(fathom_proc_event, tid)
	OFF(fathom_proc_event, ppid) OFF(fathom_proc_event, cgroup_id) OFF(fathom_proc_event, ts_ns)
	OFF(fathom_proc_event, exit_code) OFF(fathom_proc_event, pad) OFF(fathom_proc_event, comm)
	OFF(fathom_proc_event, filename)
	SZ(fathom_sock_owner)
	OFF(fathom_sock_owner, pid) OFF(fathom_sock_owner, tid) OFF(fathom_sock_owner, cgroup_id)
	OFF(fathom_sock_owner, comm)
	SZ(fathom_drop_event)
	OFF(fathom_drop_event, type) OFF(fathom_drop_event, reason) OFF(fathom_drop_event, ts_ns)
	OFF(fathom_drop_event, location) OFF(fathom_drop_event, ifindex) OFF(fathom_drop_event, netns)
	OFF(fathom_drop_event, len) OFF(fathom_drop_event, suppressed) OFF(fathom_drop_event, l3_proto)
	OFF(fathom_drop_event, family) OFF(fathom_drop_event, proto) OFF(fathom_drop_event, sport)
	OFF(fathom_drop_event, dport) OFF(fathom_drop_event, saddr) OFF(fathom_drop_event, daddr)
	SZ(fathom_drop_limit)
	OFF(fathom_drop_limit, window_start_ns) OFF(fathom_drop_limit, emitted)
	OFF(fathom_drop_limit, suppressed)
	{ "enum.FATHOM_CNT_MAX", FATHOM_CNT_MAX },
	{ "enum.FATHOM_EV_DROP", FATHOM_EV_DROP },
	{ "enum.FATHOM_EV_PROC_EXIT", FATHOM_EV_PROC_EXIT },
	{ "const.FATHOM_FLOW_END_SENT", FATHOM_FLOW_END_SENT },
	{ "const.FATHOM_IFACE_COUNT_EGRESS", FATHOM_IFACE_COUNT_EGRESS },
	{ 0, 0 },
};


/* The XDP shield's structs (bpf/shield.h), checked by src/abi/shield.rs. */
const struct fathom_layout_entry fathom_shield_abi_layout[] = {
	SZ(fathom_shield_lpm_key)
	OFF(fathom_shield_lpm_key, prefixlen) OFF(fathom_shield_lpm_key, addr)
	SZ(fathom_shield_block)
	OFF(fathom_shield_block, expires_ns) OFF(fathom_shield_block, added_ns)
	OFF(fathom_shield_block, origin) OFF(fathom_shield_block, pad)
	SZ(fathom_shield_note) OFF(fathom_shield_note, text)
	{ "const.FATHOM_SHIELD_NOTE_LEN", FATHOM_SHIELD_NOTE_LEN },
	SZ(fathom_shield_allow)
	OFF(fathom_shield_allow, flags) OFF(fathom_shield_allow, pad)
	SZ(fathom_shield_config)
	OFF(fathom_shield_config, mode) OFF(fathom_shield_config, events_per_sec)
	OFF(fathom_shield_config, syn_rate) OFF(fathom_shield_config, syn_burst)
	OFF(fathom_shield_config, pkt_rate) OFF(fathom_shield_config, pkt_burst)
	OFF(fathom_shield_config, clock_ns)
	SZ(fathom_shield_bucket)
	OFF(fathom_shield_bucket, last_ns) OFF(fathom_shield_bucket, syn_tokens)
	OFF(fathom_shield_bucket, pkt_tokens)
	SZ(fathom_shield_event)
	OFF(fathom_shield_event, type) OFF(fathom_shield_event, reason) OFF(fathom_shield_event, ts_ns)
	OFF(fathom_shield_event, ifindex) OFF(fathom_shield_event, suppressed) OFF(fathom_shield_event, len)
	OFF(fathom_shield_event, family) OFF(fathom_shield_event, proto) OFF(fathom_shield_event, tcp_flags)
	OFF(fathom_shield_event, monitor) OFF(fathom_shield_event, sport) OFF(fathom_shield_event, dport)
	OFF(fathom_shield_event, pad) OFF(fathom_shield_event, saddr) OFF(fathom_shield_event, daddr)
	SZ(fathom_shield_event_limit)
	OFF(fathom_shield_event_limit, window_start_ns) OFF(fathom_shield_event_limit, emitted)
	OFF(fathom_shield_event_limit, suppressed)
	{ "enum.FATHOM_SHIELD_R_MAX", FATHOM_SHIELD_R_MAX },
	{ "enum.FATHOM_SHIELD_P_MAX", FATHOM_SHIELD_P_MAX },
	{ "enum.FATHOM_SHIELD_S_MAX", FATHOM_SHIELD_S_MAX },
	{ "enum.FATHOM_SHIELD_R_TCP_XMAS", FATHOM_SHIELD_R_TCP_XMAS },
	{ "enum.FATHOM_SHIELD_S_BUCKETS_FULL", FATHOM_SHIELD_S_BUCKETS_FULL },
	{ "const.FATHOM_EV_SHIELD_DROP", FATHOM_EV_SHIELD_DROP },
	{ "const.FATHOM_SHIELD_MONITOR", FATHOM_SHIELD_MONITOR },
	{ 0, 0 },
};
