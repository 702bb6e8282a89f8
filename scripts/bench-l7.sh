#!/usr/bin/env bash
# Live L7 capture overhead, measured in one run against its own baseline (nothing asserts on
# time; the figures and ratios are printed):
#   - wrk from pod x/a against nginx in pod y/b: requests/s with the agent running without and
#     with --l7 (ratio), the agent's user CPU per request (utime from /proc/PID/stat), and the
#     L7 events lost (kernel ring full) at that rate;
#   - iperf3 x/a -> y/b: throughput with no agent vs the agent with everything on (ratio);
#   - wrk over HTTPS (nginx ssl, OpenSSL on both ends): requests/s without and with --l7, where
#     every request costs the TLS uprobes (SSL_write/SSL_read entry + return) on both ends.
# Usage: scripts/bench-l7.sh [SECONDS] (default 10). FATHOM=path/to/fathom picks the binary
# (default: a release build). Everything it creates (lab, agents, servers, temp dir) is removed
# on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
if [ -z "${FATHOM:-}" ]; then
	(cd "$root" && cargo build --release -q -p fathom-cli)
	FATHOM="${CARGO_TARGET_DIR:-$root/target}/release/fathom"
fi
for t in wrk iperf3 nginx; do command -v $t >/dev/null || { echo "bench-l7: $t missing (make deps)"; exit 1; }; done

lab="bl7$$"
dir=$(mktemp -d /tmp/fathom-bench-l7.XXXXXX)
pids=()
agent_pid=""
cleanup() {
	[ -n "$agent_pid" ] && kill -INT "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	"$FATHOM" lab down "$lab" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT

cat >"$dir/spec.yaml" <<EOF
namespaces:
  - name: x
    pods: [{name: a}]
  - name: y
    pods: [{name: b}]
EOF
"$FATHOM" lab up -f "$dir/spec.yaml" --name "$lab" >/dev/null
b_ip=$("$FATHOM" lab exec --lab "$lab" y/b -- sh -c "ip -4 -o addr show scope global | awk '{print \$4}' | cut -d/ -f1 | head -1")

mkdir -p "$dir/www" "$dir/tmp"
head -c 1024 /dev/zero >"$dir/www/file"
cat >"$dir/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1; user root; pid $dir/nginx.pid; error_log $dir/error.log;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp; keepalive_requests 1000000;
  server { listen 80; root $dir/www; }
  server { listen 443 ssl; ssl_certificate $dir/cert.pem; ssl_certificate_key $dir/key.pem; root $dir/www; } }
EOF
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=bench -days 1 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
"$FATHOM" lab exec --lab "$lab" y/b -- nginx -c "$dir/nginx.conf" -p "$dir" & pids+=($!)
"$FATHOM" lab exec --lab "$lab" y/b -- iperf3 -s -p 5201 >/dev/null 2>&1 & pids+=($!)
sleep 1

start_agent() { # extra flags...
	# --policy-pin-root off: policy enforcement (empty here) goes with the agent, no pins left.
	"$FATHOM" agent --attach lab --lab "$lab" --web-address off --no-store --policy-pin-root off --socket "$dir/agent.sock" "$@" \
		>/dev/null 2>"$dir/agent.log" &
	agent_pid=$!
	for _ in $(seq 100); do
		"$FATHOM" status --socket "$dir/agent.sock" >/dev/null 2>&1 && break
		sleep 0.2
	done
	sleep 1
}
stop_agent() {
	kill -INT "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; agent_pid=""
}
utime() { awk '{print $14}' "/proc/$1/stat"; }
wrk_rps() { # [scheme]
	"$FATHOM" lab exec --lab "$lab" x/a -- wrk -t2 -c32 -d"${secs}s" "${1:-http}://$b_ip/file" |
		awk '/Requests\/sec/ {print $2}'
}
iperf_mbps() {
	"$FATHOM" lab exec --lab "$lab" x/a -- iperf3 -c "$b_ip" -p 5201 -t "$secs" -J |
		python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6, 1))'
}
hz=$(getconf CLK_TCK)

echo "bench-l7: $secs s per run, binary $FATHOM"
start_agent
rps_off=$(wrk_rps)
stop_agent

start_agent --l7
u0=$(utime "$agent_pid")
rps_on=$(wrk_rps)
u1=$(utime "$agent_pid")
l7=$("$FATHOM" status -o json --socket "$dir/agent.sock" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["l7"]))')
stop_agent

python3 - "$rps_off" "$rps_on" "$u0" "$u1" "$hz" "$secs" "$l7" <<'EOF'
import json, sys
off, on, u0, u1, hz, secs = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
l7 = json.loads(sys.argv[7])
reqs = on * secs
cpu_us = (u1 - u0) / hz * 1e6
print(f"wrk requests/s: agent without L7 {off:,.0f}, with L7 {on:,.0f}, ratio {on/off:.3f}")
print(f"agent user CPU per request with L7: {cpu_us/reqs:.2f} us ({(u1-u0)/hz:.2f} s for {reqs:,.0f} requests)")
k = l7.get("kernel", {})
print(f"L7 events sent {k.get('events_sent', 0):,}, lost {k.get('events_lost', 0):,}, truncated {k.get('truncated', 0):,}; records {l7.get('records', 0):,}")
EOF

mbps_none=$(iperf_mbps)
start_agent
mbps_flows=$(iperf_mbps)
stop_agent
start_agent --l7
mbps_all=$(iperf_mbps)
muted=$("$FATHOM" status -o json --socket "$dir/agent.sock" | python3 -c 'import json,sys; print(json.load(sys.stdin)["l7"]["kernel"].get("calls_muted", 0))')
stop_agent
python3 -c "import sys; a,f,b=map(float,sys.argv[1:4]); print(f'iperf3 Mbit/s: no agent {a:,.1f}, agent without L7 {f:,.1f} (ratio {f/a:.3f}), agent with everything on {b:,.1f} (ratio {b/a:.3f}; vs without L7 {b/f:.3f}); muted syscalls {sys.argv[4]}')" "$mbps_none" "$mbps_flows" "$mbps_all" "$muted"

start_agent
tls_off=$(wrk_rps https)
stop_agent
start_agent --l7
tls_on=$(wrk_rps https)
tls_k=$("$FATHOM" status -o json --socket "$dir/agent.sock" | python3 -c 'import json,sys; k=json.load(sys.stdin)["l7"]["kernel"]; print(k.get("tls_events", 0), k.get("events_lost", 0))')
stop_agent
python3 -c "import sys; a,b=map(float,sys.argv[1:3]); t,l=sys.argv[3].split(); print(f'wrk HTTPS requests/s: agent without L7 {a:,.0f}, with L7 + TLS uprobes {b:,.0f}, ratio {b/a:.3f}; TLS plaintext events {int(t):,}, lost {int(l):,}')" "$tls_off" "$tls_on" "$tls_k"
