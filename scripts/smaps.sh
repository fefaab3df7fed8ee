#!/usr/bin/env bash
# Where an idle `valor serve`'s resident memory is: starts BIN (default: the
# release binary) on its embedded defaults in an empty directory, waits 2 s
# after the first /health 200, then prints VmRSS and every mapping holding
# more than 100 KiB (Rss, permissions, file), and the sums by kind.
# Usage: bash scripts/smaps.sh [BIN]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-${CARGO_TARGET_DIR:-target}/release/valor}")
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$work" && exec env -i PATH="$PATH" HOME="$work" VALOR_HTTP_ADDR="127.0.0.1:$port" "$bin" serve 2>"$work/log") &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
until curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/log"; exit 1; }
  sleep 0.005
done
sleep 2
grep VmRSS "/proc/$pid/status"
awk -v exe="$bin" '
  /^[0-9a-f]+-[0-9a-f]+ / { perm = $2; name = ($6 == "") ? "[anon]" : $6 }
  /^Rss:/ {
    if ($2 > 100) printf "%8d KiB %s %s\n", $2, perm, name
    kind = (name == exe) ? "valor executable" : (name ~ /^\// ? "other files (libc, ld.so, …)" : "anonymous (heap, stacks)")
    sum[kind] += $2
  }
  END { for (k in sum) printf "%8d KiB total: %s\n", sum[k], k }
' "/proc/$pid/smaps"
