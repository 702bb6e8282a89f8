/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Helpers shared by Fathom's BPF programs (kernel side only; not part of the ABI). */
#ifndef FATHOM_COMMON_H
#define FATHOM_COMMON_H

/* Per-CPU counters indexed by enum fathom_counter: exact even when events are lost. */
#define FATHOM_COUNTERS_MAP(name)                                   \
	struct {                                                    \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);            \
		__uint(max_entries, FATHOM_CNT_MAX);                \
		__type(key, __u32);                                 \
		__type(value, __u64);                               \
	} name SEC(".maps")

static __always_inline void bump(void *map, __u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(map, &idx);
	if (c)
		*c += 1;
}

static __always_inline void v4_mapped_addr(__u8 *dst, __u32 addr_be)
{
	__u32 *w = (__u32 *)dst;
	w[0] = 0;
	w[1] = 0;
	w[2] = bpf_htonl(0xffff);
	w[3] = addr_be;
}

#endif
