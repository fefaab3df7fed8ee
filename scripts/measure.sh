#!/usr/bin/env bash
# Measure the release binary: size, startup time to the first /health 200,
# and resident memory (RSS) when idle and after a burst of health checks.
# Usage: bash scripts/measure.sh         (builds the release binary first)
#        bash scripts/measure.sh BIN     (measures BIN as it is)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
if [ $# -ge 1 ]; then
  bin=$1
else
  cargo build --release --locked --quiet
  bin="$target/release/valor"
fi
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

size=$(stat -c %s "$bin")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start=$(date +%s%N)
(cd "$work" && exec env -i PATH="$PATH" HOME="$work" VALOR_HTTP_ADDR="127.0.0.1:$port" "$bin" serve 2>"$work/log") &
pid=$!
until curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/log"; exit 1; }
  sleep 0.005
done
ready=$(date +%s%N)
sleep 2
rss_idle=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$port/health" >/dev/null; done
rss_after=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
kill -TERM "$pid"; wait "$pid" || true

echo "release binary size: $((size / 1024)) KiB ($(( size / 1048576 )) MiB)"
echo "startup to first /health 200: $(( (ready - start) / 1000000 )) ms"
echo "idle RSS (2 s after start): ${rss_idle} KiB"
echo "RSS after 200 /health requests: ${rss_after} KiB"
