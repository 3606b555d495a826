# shellcheck shell=bash
# Shared by the proxy scenarios (e2e.sh, node-proxy.sh, go-proxy.sh) and
# scripts/demo.sh: TAP-style checks and waiting for a proxy to listen.
# Source it; it defines functions and the counters `passed` and `failed`.

passed=0 failed=0
# Evidence on one line, so every check stays one line.
flat() { printf '%s' "$*" | tr '\n\r' '||' | cut -c1-700; }
ok() { passed=$((passed + 1)); echo "ok - $1"; }
nok() { failed=$((failed + 1)); echo "not ok - $1: $(flat "$2")"; }
# check WHAT EVIDENCE CONDITION...: ok when the command CONDITION succeeds.
check() {
  local what=$1 evidence=$2
  shift 2
  if "$@"; then ok "$what"; else nok "$what" "$evidence"; fi
}
# `[ A = B ]` as one command for check.
same() { [ "$1" = "$2" ]; }
# has TEXT PATTERN: TEXT holds PATTERN (grep); hasi ignores case.
has() { grep -q -- "$2" <<<"$1"; }
hasi() { grep -qi -- "$2" <<<"$1"; }

# stop_pids: SIGTERM every process in the array `pids`, give each 5 s to
# stop gracefully, then SIGKILL what is left.
stop_pids() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
}

# listening_url OUT PID TRIES PAUSE: prints the URL of the first
# `listening on tcp://...` line the process PID wrote to OUT, polling TRIES
# times PAUSE seconds apart; fails when PID exits first or time runs out.
listening_url() {
  local out=$1 pid=$2 tries=$3 pause=$4 url
  for _ in $(seq "$tries"); do
    url=$(sed -n 's|^listening on \(tcp://.*\)$|\1|p' "$out" | head -1)
    if [ -n "$url" ]; then
      echo "$url"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep "$pause"
  done
  return 1
}
