/* Sizes and field offsets of bpf/l7.h as the C compiler lays them out; checked against the
 * Rust mirror (src/abi/l7.rs) by a unit test. */
#include <stddef.h>
#include "fathom.h"

struct fathom_layout_entry {
	const char *name;
	unsigned long value;
};

#define SZ(s) { #s, sizeof(struct s) },
#define OFF(s, f) { #s "." #f, offsetof(struct s, f) },

const struct fathom_layout_entry fathom_abi_l7_layout[] = {
	SZ(fathom_l7_event)
	OFF(fathom_l7_event, type) OFF(fathom_l7_event, pid) OFF(fathom_l7_event, tid)
	OFF(fathom_l7_event, fd) OFF(fathom_l7_event, ts_ns) OFF(fathom_l7_event, cookie)
	OFF(fathom_l7_event, cgroup_id) OFF(fathom_l7_event, ret) OFF(fathom_l7_event, data_len)
	OFF(fathom_l7_event, direction) OFF(fathom_l7_event, protocol) OFF(fathom_l7_event, role)
	OFF(fathom_l7_event, flags) OFF(fathom_l7_event, family) OFF(fathom_l7_event, l4proto)
	OFF(fathom_l7_event, local_port) OFF(fathom_l7_event, remote_port) OFF(fathom_l7_event, pad)
	OFF(fathom_l7_event, local_addr) OFF(fathom_l7_event, remote_addr) OFF(fathom_l7_event, comm)
	{ "const.FATHOM_L7_MAX_DATA", FATHOM_L7_MAX_DATA },
	{ "const.FATHOM_L7_DEFAULT_CAP", FATHOM_L7_DEFAULT_CAP },
	{ "enum.FATHOM_EV_L7_DATA", FATHOM_EV_L7_DATA },
	{ "enum.FATHOM_EV_L7_CLOSE", FATHOM_EV_L7_CLOSE },
	{ "enum.FATHOM_L7_PROTO_MYSQL", FATHOM_L7_PROTO_MYSQL },
	{ "enum.FATHOM_L7_CNT_MAX", FATHOM_L7_CNT_MAX },
	{ "const.FATHOM_L7_F_TLS", FATHOM_L7_F_TLS },
	{ "const.FATHOM_L7_ROLE_SERVER", FATHOM_L7_ROLE_SERVER },
	{ "const.FATHOM_TLS_COOKIE_READ", FATHOM_TLS_COOKIE_READ },
	{ "const.FATHOM_TLS_COOKIE_EX", FATHOM_TLS_COOKIE_EX },
	{ "enum.FATHOM_L7_CNT_TLS_NO_FD", FATHOM_L7_CNT_TLS_NO_FD },
	{ 0, 0 },
};
