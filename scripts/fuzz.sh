#!/usr/bin/env bash
# Runs each cargo-fuzz target for SECONDS (default 60) from the examples as
# seed corpus; TARGETS (space-separated) picks some. Each input may take at
# most FUZZ_TIMEOUT seconds (default 10) and be FUZZ_MAX_LEN bytes (default
# 64 KiB), so that slow inputs, not only crashes, are found (F3 of the
# reliability audit: a quadratic 37 KB request). Needs the nightly
# toolchain; installs cargo-fuzz if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
timeout=${FUZZ_TIMEOUT:-10}
max_len=${FUZZ_MAX_LEN:-65536}
targets=${TARGETS:-decide_json resident}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --quiet
status=0
for target in $targets; do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  cp -n examples/*.input.json "$corpus/" 2>/dev/null || true
  echo "fuzz: $target for ${seconds}s (-timeout=$timeout -max_len=$max_len)"
  # PIPESTATUS: a crash or timeout fails the script, not only the tail.
  (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -timeout="$timeout" -max_len="$max_len" \
      -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 12; exit "${PIPESTATUS[0]}") || status=1
done
exit $status
