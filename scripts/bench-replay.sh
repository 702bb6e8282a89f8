#!/usr/bin/env bash
# `fathom replay` vs `tshark -r` on the same large synthetic capture, plus records/s and MB/s
# per protocol: `scripts/bench-replay.sh [EXCHANGES]` (default 200000). Release build; the
# figures are printed, nothing asserts on wall time. Needs tshark for the comparison (the
# per-protocol figures are printed without it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ $# -gt 0 ]; then export FATHOM_BENCH_EXCHANGES=$1; fi
command -v tshark >/dev/null || echo "bench-replay.sh: tshark not found, the comparison will be skipped"
exec cargo bench -p fathom-l7 --bench replay_vs_tshark
