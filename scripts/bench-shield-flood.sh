#!/usr/bin/env bash
# The legit client's request rate during a bounded hping3 SYN flood, as a fraction of its rate
# without the flood, with the XDP shield off and on (enforce, 20000 SYN/s burst 20000 per source:
# above what the legit client opens, far below a single-source --flood).
# Everything runs in a lab of its own (three netns pods) that is torn down on exit; the flood is
# count- and time-bounded and only aimed at a lab address. Needs root, nginx, hping3, python3.
set -euo pipefail
fathom=${1:-./target/release/fathom}
[ -x "$fathom" ] || fathom=./target/debug/fathom
secs=${BENCH_SECONDS:-4}
lab=bfl$$
work=$(mktemp -d)
pins=/sys/fs/bpf/fathom-test-$lab
agent=""
cleanup() {
	if [ -n "$agent" ]; then kill -INT "$agent" 2>/dev/null; wait "$agent" 2>/dev/null || true; fi
	"$fathom" lab down "$lab" >/dev/null 2>&1 || true
	"$fathom" uninstall --shield-pin-root "$pins" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/spec.yaml" <<YAML
namespaces:
  - name: x
    pods: [{name: a}, {name: c}]
  - name: y
    pods: [{name: b, ports: [{name: http, port: 80, protocol: TCP}]}]
YAML
"$fathom" lab up -f "$work/spec.yaml" --name "$lab" >/dev/null
ip_b=$("$fathom" lab ls -o json | python3 -c "
import json,sys
for p in json.load(sys.stdin):
    if p.get('lab')=='$lab' and p.get('namespace')=='y' and p.get('name')=='b': print(p['ipv4'])")
mkdir -p "$work/www" "$work/tmp"
echo ok >"$work/www/index.html"
cat >"$work/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; user root; pid $work/nginx.pid; error_log $work/error.log;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp; server { listen 80; root $work/www; } }
CONF
"$fathom" lab exec --lab "$lab" y/b -- nginx -c "$work/nginx.conf" -p "$work" &
disown # `lab down` ends it
sleep 1

# Requests per second from pod c: one connection per request, as a plain client would.
client_rate() {
	"$fathom" lab exec --lab "$lab" x/c -- python3 -c "
import socket,time
n=0; end=time.time()+$secs
while time.time()<end:
    try:
        s=socket.create_connection(('$ip_b',80),timeout=1); s.sendall(b'GET / HTTP/1.0\r\n\r\n')
        while s.recv(4096): pass
        s.close(); n+=1
    except OSError: pass
print(n/$secs)"
}
flooded_rate() {
	"$fathom" lab exec --lab "$lab" x/a -- timeout $((secs + 2)) hping3 -S -p 80 --flood -q "$ip_b" >/dev/null 2>&1 &
	local f=$!
	sleep 0.5
	client_rate
	kill "$f" 2>/dev/null || true
	wait "$f" 2>/dev/null || true
}

start_agent() { # $1: shield enabled (true/false)
	printf 'shield:\n  enabled: %s\n  mode: enforce\n  syn_per_sec: 20000\n  syn_burst: 20000\n  pin_root: %s\n' "$1" "$pins" >"$work/fathom.yaml"
	"$fathom" agent -c "$work/fathom.yaml" --attach lab --lab "$lab" --web-address off --no-store --policy-pin-root off --socket "$work/s.sock" 2>"$work/agent.log" &
	agent=$!
	for _ in $(seq 50); do
		"$fathom" status -o json --socket "$work/s.sock" >"$work/st.json" 2>/dev/null &&
			{ [ "$1" = false ] || grep -q '"mode":"native"\|"mode":"generic"' "$work/st.json"; } && break
		sleep 0.2
	done
}
stop_agent() { kill -INT "$agent"; wait "$agent" 2>/dev/null || true; agent=""; }

# The same agent (flow sensor, pipeline, detectors) runs in both cases; only the shield differs.
start_agent false
base=$(client_rate)
off=$(flooded_rate)
stop_agent
start_agent true
base_on=$(client_rate)
on=$(flooded_rate)
dropped=$("$fathom" status -o json --socket "$work/s.sock" | python3 -c "import json,sys; print(json.load(sys.stdin)['shield']['counters']['drops']['syn_rate'])")
python3 - "$base" "$off" "$base_on" "$on" "$dropped" <<'PY'
import sys
base, off, base_on, on, dropped = map(float, sys.argv[1:])
print("legit client during an hping3 --flood SYN flood (requests/s, one connection each)")
print(f"  no flood, shield off   {base:8.1f}")
print(f"  flood,    shield off   {off:8.1f}   {off/base if base else 0:6.2f} of no-flood")
print(f"  no flood, shield on    {base_on:8.1f}")
print(f"  flood,    shield on    {on:8.1f}   {on/base_on if base_on else 0:6.2f} of no-flood  ({dropped:.0f} SYNs dropped at XDP)")
PY
