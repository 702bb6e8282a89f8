#!/usr/bin/env bash
# `make run`: the agent in the background with its defaults, the host's live flows in the
# foreground; Ctrl-C stops both and the agent detaches everything but network policy
# enforcement, which stays pinned under /sys/fs/bpf/fathom/policy (`fathom uninstall`).
set -euo pipefail
fathom=${1:-./target/release/fathom}
sock=${FATHOM_SOCKET:-/run/fathom/fathom.sock}
log=${FATHOM_AGENT_LOG:-/tmp/fathom-agent.log}

"$fathom" agent --socket "$sock" >"$log" 2>&1 &
agent=$!
stop() {
	kill -INT "$agent" 2>/dev/null || true
	wait "$agent" 2>/dev/null || true
	echo "agent stopped (log: $log)"
}
trap stop EXIT

for _ in $(seq 1 100); do
	"$fathom" status --socket "$sock" >/dev/null 2>&1 && break
	kill -0 "$agent" 2>/dev/null || { cat "$log"; exit 1; }
	sleep 0.2
done
"$fathom" status --socket "$sock" | sed -n '1,2p;/INTERFACES/,/^$/p'
grep -h "web UI on" "$log" | sed 's/^fathom agent: //' || true
echo "live flows (Ctrl-C to stop; 'fathom observe --help' for filters, agent log: $log):"
"$fathom" observe --socket "$sock" -f
