#!/usr/bin/env bash
# Fuzzes every parser, the inference/session layer and the capture reader of fathom-l7 for a
# bounded time: `scripts/fuzz.sh [SECONDS] [TARGET...]` (default 30 s per target, all targets).
#
# - Installs cargo-fuzz when it is missing.
# - cargo-fuzz passes nightly-only flags (-Zsanitizer=address …); on a stable toolchain that
#   works with RUSTC_BOOTSTRAP=1, which is set here and nowhere else.
# - Targets are built with optimisations and debug assertions (overflow checks included),
#   under AddressSanitizer, and run with libFuzzer limits: 512 MB RSS, 256 MB per malloc,
#   10 s per input. A panic, an ASan report, an allocation over the limit or a slow input is a
#   failure; the reproducer is kept in crates/fathom-l7/fuzz/artifacts/TARGET/.
# - Seeds come from real captures (the crate's test captures and, when FATHOM_CORPUS is set,
#   the shared corpus), cut into per-protocol conversations by the `seeds` helper. Inputs
#   found along the way accumulate in crates/fathom-l7/fuzz/corpus/TARGET/ (git-ignored).
#   Inputs that once crashed a target live in crates/fathom-l7/fuzz/regressions/TARGET/
#   (committed) and are replayed first on every run.
#
# Exits non-zero if any target failed; prints one line per target either way.
set -euo pipefail

secs=${1:-30}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$root/crates/fathom-l7/fuzz"
all_targets=(http1 http2 hpack dns_udp dns_tcp tls redis kafka postgres mysql session pcap)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

cd "$fuzz"
echo "fuzz.sh: building targets (release, debug assertions, ASan)"
cargo fuzz build -O -a >/dev/null

seeds="$fuzz/target/seeds"
rm -rf "$seeds"
# The seed writer is a plain binary (no sanitizer flags): cargo run, not cargo fuzz.
env -u RUSTC_BOOTSTRAP cargo run -q --release --bin seeds -- "$seeds" ${FATHOM_CORPUS:+"$FATHOM_CORPUS"} >/dev/null

failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t" "$seeds/$t" "regressions/$t"
    log="$fuzz/target/fuzz-$t.log"
    echo "fuzz.sh: $t for ${secs}s"
    set +e
    cargo fuzz run -O -a "$t" "corpus/$t" "$seeds/$t" "regressions/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=512 -malloc_limit_mb=256 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    if [ $rc -eq 0 ]; then
        summary+=("$(printf '%-9s ok    %10s runs  cov %s' "$t" "${runs:-?}" "${cov:-?}")")
    else
        failed+=("$t")
        summary+=("$(printf '%-9s FAIL  %10s runs  (see %s)' "$t" "${runs:-?}" "$log")")
        grep -E 'panicked|ERROR: (AddressSanitizer|libFuzzer)|SUMMARY|Test unit written' "$log" | head -8 | sed 's/^/    /'
    fi
done

echo
echo "fuzz.sh: ${secs}s per target"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: FAILED: ${failed[*]} (reproduce: cd crates/fathom-l7/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a TARGET artifacts/TARGET/FILE)"
    exit 1
fi
