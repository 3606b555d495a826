#!/usr/bin/env bash
# Runs each cargo-fuzz target for SECONDS (default 60); TARGETS
# (space-separated) picks some. Seeds: the examples for the engine's
# targets, fuzz/seeds/<target> for the host's (a docker CLI create body,
# one record of each kind). Each input may take at most FUZZ_TIMEOUT
# seconds (default 10) and be FUZZ_MAX_LEN bytes (default 64 KiB), so that
# slow inputs, not only crashes, are found (F3 of the reliability audit: a
# quadratic 37 KB request). Needs the nightly toolchain; installs
# cargo-fuzz if missing. docs/FUZZING.md has the targets and their runs.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
timeout=${FUZZ_TIMEOUT:-10}
max_len=${FUZZ_MAX_LEN:-65536}
targets=${TARGETS:-decide_json resident proxy_create store_records}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --quiet
# The host's targets link flocker-host, which embeds the default policy
# module. Built here with the stable toolchain (the nightly one has no
# wasm32 target, and the sanitizer's flags are not for wasm32), once.
module=target/embedded-policy/wasm32-unknown-unknown/wasm-release/flocker_policy.wasm
cargo build --quiet -p flocker-wasm --lib --target wasm32-unknown-unknown \
  --profile wasm-release --target-dir target/embedded-policy
export FLOCKER_POLICY_WASM=$PWD/$module
status=0
for target in $targets; do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  case $target in
    decide_json | resident) cp -n examples/*.input.json "$corpus/" 2>/dev/null || true ;;
    *) cp -n "fuzz/seeds/$target"/* "$corpus/" 2>/dev/null || true ;;
  esac
  echo "fuzz: $target for ${seconds}s (-timeout=$timeout -max_len=$max_len)"
  # PIPESTATUS: a crash or timeout fails the script, not only the tail.
  (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -timeout="$timeout" -max_len="$max_len" \
      -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 12; exit "${PIPESTATUS[0]}") || status=1
done
exit $status
