#!/usr/bin/env bash
# Lab packets per second through a router with 10k rules: no filter (baseline) vs 10k iptables
# rules in the router's FORWARD chain vs Fathom's policy datapath (policy.bpf.c, TCX) with a
# 10k-entry policy on the router's veth towards the receiver. Nothing asserts on time: the
# figures and ratios are printed.
#
# Topology (network namespaces of its own, addresses only inside them):
#   src 10.250.1.2 --veth-- 10.250.1.1 rtr 10.250.2.1 --veth-- 10.250.2.2 dst
# Load: iperf3 -u -b 0 -l 64 from src to dst for SECONDS per run (bounded: one sender, one
# stream); the figure is packets received by dst's veth per second (interface counters).
#   iptables: 10k `-s 10.251.x.y -p udp --dport N -j ACCEPT` rules that never match the flow,
#             then one ACCEPT for it: the chain is linear, every packet walks all of them.
#   fathom:   examples/policy_pps.rs: 100 endpoints x 100 entries, the flow ALLOWED by the
#             receiver's last port rule (identity of 10.250.1.2 from the ipcache); run with
#             conntrack (the product: a flow's later packets hit the conntrack) and without
#             (every packet does the ipcache + policy lookups).
# Usage: scripts/bench-policy-pps.sh [SECONDS] (default 5). POLICY_PPS=path/to/policy_pps
# picks the example binary (default: a build of it; its userspace does no per-packet work, a
# debug build measures the same kernel program). Everything it creates is removed on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-5}
port=5201
for t in iperf3 iptables-restore ip; do command -v $t >/dev/null || { echo "bench-policy-pps: $t missing (make deps)"; exit 1; }; done
if [ -z "${POLICY_PPS:-}" ]; then
	(cd "$root" && cargo build -q -p fathom-bpf --example policy_pps)
	POLICY_PPS="${CARGO_TARGET_DIR:-$root/target}/debug/examples/policy_pps"
fi

pfx="fpps-$$"
src="$pfx-src" rtr="$pfx-rtr" dst="$pfx-dst"
dir=$(mktemp -d /tmp/fathom-bench-pps.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	for n in "$src" "$rtr" "$dst"; do ip netns del "$n" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT

nsx() { local n=$1; shift; ip netns exec "$n" "$@"; }
for n in "$src" "$rtr" "$dst"; do ip netns add "$n"; nsx "$n" ip link set lo up; done
# Created inside the router netns, then one end moved out: no name ever appears on the host.
nsx "$rtr" ip link add r-src type veth peer name eth0 netns "$src"
nsx "$rtr" ip link add r-dst type veth peer name eth0 netns "$dst"
nsx "$rtr" ip addr add 10.250.1.1/24 dev r-src
nsx "$rtr" ip addr add 10.250.2.1/24 dev r-dst
nsx "$src" ip addr add 10.250.1.2/24 dev eth0
nsx "$dst" ip addr add 10.250.2.2/24 dev eth0
for n in "$src" "$dst"; do nsx "$n" ip link set eth0 up; done
nsx "$rtr" ip link set r-src up
nsx "$rtr" ip link set r-dst up
nsx "$src" ip route add default via 10.250.1.1
nsx "$dst" ip route add default via 10.250.2.1
nsx "$rtr" sysctl -qw net.ipv4.ip_forward=1
nsx "$src" ping -c1 -W2 10.250.2.2 >/dev/null || { echo "bench-policy-pps: src cannot reach dst"; exit 1; }

# ip netns exec (not the nsx function, whose background subshell a kill would not pass on):
# it execs iperf3, so $! is the server itself.
ip netns exec "$dst" iperf3 -s -p $port >/dev/null 2>&1 & pids+=($!)
sleep 1

rx() { nsx "$dst" cat /sys/class/net/eth0/statistics/rx_packets; }
# One bounded blast; prints received packets per second at dst.
blast() {
	local a b t0 t1
	a=$(rx)
	t0=$(date +%s.%N)
	# Bounded even if the flow is dropped (the UDP client then waits for its handshake forever).
	nsx "$src" timeout $((secs + 10)) iperf3 -c 10.250.2.2 -p $port -u -b 0 -l 64 -t "$secs" >/dev/null 2>&1 || true
	t1=$(date +%s.%N)
	sleep 0.2
	b=$(rx)
	# Divided by the iperf3 run's wall time (connect + SECONDS + report: a little over SECONDS).
	awk -v p=$((b - a)) -v s="$t0" -v e="$t1" 'BEGIN { printf "%.0f\n", p / (e - s) }'
}

echo "bench-policy-pps: iperf3 -u -b 0 -l 64 -t $secs, src -> rtr -> dst, pps received at dst ($(nproc) CPUs; $(iptables -V))"
base=$(blast)
echo "baseline (no filter):             $base pps"
# The baseline again at the end (the best of the two is the reference: the machine is shared).

{
	echo "*filter"
	echo ":FORWARD ACCEPT [0:0]"
	for i in $(seq 0 9999); do
		echo "-A FORWARD -s 10.251.$((i / 250)).$((i % 250 + 1))/32 -p udp -m udp --dport $((1000 + i % 4000)) -j ACCEPT"
	done
	echo "-A FORWARD -s 10.250.1.2/32 -d 10.250.2.2/32 -p udp -m udp --dport $port -j ACCEPT"
	echo "COMMIT"
} >"$dir/rules"
nsx "$rtr" iptables-restore <"$dir/rules"
rules=$(nsx "$rtr" iptables -S FORWARD | grep -c -- '-A FORWARD')
ipt=$(blast)
last=$(nsx "$rtr" iptables -L FORWARD -v -x -n | tail -1 | awk '{print $1}')
echo "iptables ($rules FORWARD rules):    $ipt pps   (last rule matched $last packets)"
nsx "$rtr" iptables -F FORWARD

run_fathom() { # extra flags...
	local fifo="$dir/stdin" out="$dir/fathom.out" pid pps
	rm -f "$fifo"; mkfifo "$fifo"
	ip netns exec "$rtr" "$POLICY_PPS" r-dst 10.250.1.2 $port "$@" <"$fifo" >"$out" 2>&1 & pid=$!
	pids+=($pid)
	exec 9>"$fifo"
	for _ in $(seq 100); do grep -q '^ready' "$out" 2>/dev/null && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
	grep -q '^ready' "$out" || { cat "$out" >&2; exec 9>&-; return 1; }
	pps=$(blast)
	exec 9>&-
	wait $pid || true
	echo "$pps"
	# The nonzero datapath counters on one line; a drop means the flow was not allowed and
	# the figure would measure drops, not the lookup: say so.
	{ head -1 "$out" | sed 's/^ready: /    /'
	  printf '    counters:'; awk '$1 == "stat" && $3 != 0 { printf " %s=%s", $2, $3 }' "$out"
	  awk '$1 == "counter" { printf " decision%s=%s", $2, $4 }' "$out"; echo
	  awk '$1 == "stat" && $2 == "dropped" && $3 != 0 { print "    WARNING: the policy dropped packets of the flow" }' "$out"; } >"$dir/fathom.detail"
}
fct=$(run_fathom)
fct_detail=$(cat "$dir/fathom.detail")
fno=$(run_fathom --no-conntrack)
fno_detail=$(cat "$dir/fathom.detail")
echo "fathom (10k entries, conntrack):  $fct pps"
echo "$fct_detail"
echo "fathom (10k entries, no ct):      $fno pps"
echo "$fno_detail"

base2=$(blast)
echo "baseline again (no filter):       $base2 pps"
[ "$base2" -gt "$base" ] && base=$base2

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo "ratios: fathom/iptables $(ratio "$fct" "$ipt") (no ct: $(ratio "$fno" "$ipt")); vs baseline: iptables $(ratio "$ipt" "$base"), fathom $(ratio "$fct" "$base") (no ct: $(ratio "$fno" "$base"))"
