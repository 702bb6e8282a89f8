#!/usr/bin/env bash
# After a test run: no lab namespace, veth, bridge, cgroup or state file, no bpffs pin, and no
# Fathom program still loaded. Exit 1 listing what is left.
set -uo pipefail
fathom=${1:-./target/debug/fathom}
left=0
if ! out=$("$fathom" lab leftovers 2>&1); then
	echo "lab leftovers:"; echo "$out"; left=1
fi
if [ -d /sys/fs/bpf/fathom ] && ! pgrep -x fathom >/dev/null; then
	echo "bpffs pins left under /sys/fs/bpf/fathom (fathom uninstall removes them):"; ls -R /sys/fs/bpf/fathom; left=1
fi
# Tests pin under unique /sys/fs/bpf/fathom-test-* directories and must remove them. Pinned
# policy links there still enforce on their interfaces with no agent running.
if ls -d /sys/fs/bpf/fathom-test-* >/dev/null 2>&1; then
	echo "test pin dirs left under /sys/fs/bpf:"; ls -d /sys/fs/bpf/fathom-test-*; left=1
	links=$(ls -d /sys/fs/bpf/fathom-test-*/links/* 2>/dev/null)
	if [ -n "$links" ]; then echo "pinned policy links among them (still enforcing):"; echo "$links"; fi
fi
if command -v bpftool >/dev/null && ! pgrep -f "fathom agent" >/dev/null; then
	progs=$(bpftool prog show 2>/dev/null | grep -oE "name (flow_ingress|flow_egress|sock_state_\w+|proc_\w+|policy_\w+|shield_xdp|l7_\w+|tls_enter|tls_exit)" | sort -u)
	if [ -n "$progs" ]; then echo "Fathom programs still loaded:"; echo "$progs"; left=1; fi
fi
if [ $left -eq 0 ]; then echo "check-clean: nothing left behind"; fi
exit $left
