#!/usr/bin/env bash
# Instructions per decision for each workload of core/benches/allocs.rs,
# counted by callgrind inside the engine's decide functions only (setup
# excluded). Deterministic where wall-clock time is not: docs/PERFORMANCE.md
# gives both.
#
#   scripts/bench-instructions.sh [LABEL...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q -p flocker-core --bench allocs --no-run 2>/dev/null
bin=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/allocs-* | grep -v '\.d$' | head -1)
labels=("$@")
if [ ${#labels[@]} -eq 0 ]; then
  labels=(resident/tag_request/10 resident/tag_request/100 resident/tag_request/1000
          resident/typical_10k_routes/1000 one_shot/typical_10k_routes/1000)
fi
out=$(mktemp)
for label in "${labels[@]}"; do
  # Two calls run (a warm-up and the counted one). Callgrind toggles
  # collection at each entry of a matching function, so the pattern names
  # exactly one: the resident entry point, or the one-shot one.
  case $label in
    one_shot/*) fn='flocker_core::decide_json_with' ;;
    *) fn='*Cluster>::decide_json_with' ;;
  esac
  valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect="$fn" \
    "$bin" "$label" >/dev/null 2>"$out.log"
  total=$(grep -E '^summary:|^totals:' "$out" | head -1 | awk '{print $2}')
  printf 'instructions/%-40s %12d per decision\n' "$label" $((total / 2))
done
rm -f "$out" "$out.log"
