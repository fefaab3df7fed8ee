#!/usr/bin/env bash
# Idle cost of open live streams: CPU time valor uses in 30 s with no
# stream, then with N streams (GET /api/conversations/{id}/events) open and
# nothing happening. Usage: bash scripts/idle-streams.sh BIN [N]
set -euo pipefail
bin=$1
streams=${2:-10}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$work" && exec env -i PATH="$PATH" HOME="$work" VALOR_HTTP_ADDR="127.0.0.1:$port" "$bin" serve 2>"$work/log") &
pid=$!
until curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1; do sleep 0.01; done
# No model is configured: the turn fails, but its conversation exists.
conversation=$(curl -s "http://127.0.0.1:$port/api/messages" -H 'content-type: application/json' \
  -d '{"title": "idle", "text": "hello"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["conversation"])')
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }  # utime + stime, clock ticks
ticks=$(getconf CLK_TCK)
sleep 2
before=$(cpu); sleep 30; after=$(cpu)
echo "no stream:    $(( (after - before) * 1000 / ticks )) ms CPU in 30 s"
for _ in $(seq 1 "$streams"); do
  curl -sN "http://127.0.0.1:$port/api/conversations/$conversation/events" >/dev/null &
  pids+=($!)
done
sleep 2
before=$(cpu); sleep 30; after=$(cpu)
echo "$streams streams: $(( (after - before) * 1000 / ticks )) ms CPU in 30 s"
echo "rss with streams: $(awk '/VmRSS/ {print $2}' "/proc/$pid/status") KiB"
