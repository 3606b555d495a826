#!/usr/bin/env bash
# Runs each cargo-fuzz target for SECONDS (default 60) from the examples as
# seed corpus. Needs the nightly toolchain; installs cargo-fuzz if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --quiet
for target in decide_json resident; do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  cp -n examples/*.input.json "$corpus/" 2>/dev/null || true
  echo "fuzz: $target for ${seconds}s"
  (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 12)
done
