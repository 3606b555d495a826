#!/usr/bin/env bash
# Whether this tree's engine gives byte-identical output to REV's (default:
# the commit before issue 12's engine changes) on the corpus of
# core/examples/outputs.rs: the examples, CASES generated inputs one-shot and
# resident, and the benchmark workloads. REV is checked out in a worktree
# under target/ with its own target directory; the example and the fixtures
# it uses are copied in, as REV may predate them.
#
#   scripts/same-output.sh [REV] [CASES]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-c42857e}
cases=${2:-2000}
root=$PWD
work=$root/target/same-output
old=$work/tree-$rev
mkdir -p "$work"
if [ ! -d "$old" ]; then
  git worktree add --detach "$old" "$rev" >/dev/null
fi
cp core/examples/outputs.rs "$old/core/examples/outputs.rs"
cp core/src/fixtures.rs "$old/core/src/fixtures.rs"
run() { # dir target-dir output
  (cd "$1" && CARGO_TARGET_DIR=$2 cargo run -q --release -p flocker-core --example outputs -- "$cases" > "$3")
}
run "$old" "$work/target-old" "$work/old.txt"
run "$root" "$root/target" "$work/new.txt"
lines=$(wc -l < "$work/new.txt")
if cmp -s "$work/old.txt" "$work/new.txt"; then
  echo "same-output: identical to $rev on $lines outputs ($(sha256sum < "$work/new.txt" | cut -c1-16))"
else
  echo "same-output: DIFFERENT from $rev:" >&2
  diff <(cut -c1-400 "$work/old.txt") <(cut -c1-400 "$work/new.txt") | head -20 >&2
  exit 1
fi
