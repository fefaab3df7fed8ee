#!/usr/bin/env bash
# Idle CPU of `valor serve`, with Telegram on (against a stand-in Bot API
# that answers getMe and holds getUpdates for its timeout, like Telegram
# with nobody writing) and with Telegram off: utime + stime from
# /proc/<pid>/stat (ticks of 10 ms) over SECONDS, 5 s after start.
# Usage: bash scripts/idle-cpu.sh BIN [SECONDS]     (SECONDS defaults to 60)
set -euo pipefail
bin=$(realpath "$1"); seconds=${2:-60}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$port" <<'PY' &
import json, sys, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
class Bot(BaseHTTPRequestHandler):
    def log_message(self, *args): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        method = self.path.rsplit("/", 1)[-1]
        try: params = json.loads(body or b"{}")
        except ValueError: params = {}
        if method == "getMe": result = {"id": 1, "is_bot": True, "first_name": "idle", "username": "idle_bot"}
        elif method == "getUpdates": time.sleep(min(int(params.get("timeout", 0)), 50)); result = []
        else: result = True
        answer = json.dumps({"ok": True, "result": result}).encode()
        try:
            self.send_response(200); self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer))); self.end_headers(); self.wfile.write(answer)
        except (BrokenPipeError, ConnectionResetError):
            pass  # valor stopped while its long poll was held
    do_GET = do_POST
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Bot).serve_forever()
PY
pids+=($!)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for mode in on off; do
  dir="$work/$mode"; mkdir -p "$dir"
  printf 'data_dir = "%s/data"\n[llm]\nprovider = "anthropic"\n[intent]\nuse_model = false\n[telegram]\npoll_timeout_secs = 30\nallowed_users = [1]\n[daydream]\nenabled = false\n' "$dir" > "$dir/valor.toml"
  vars=(PATH="$PATH" HOME="$dir" VALOR_CONFIG="$dir/valor.toml" VALOR_HTTP_ADDR=127.0.0.1:0
        ANTHROPIC_API_KEY=sk-ant-idle ANTHROPIC_BASE_URL=http://127.0.0.1:9)
  [ "$mode" = on ] && vars+=(TELEGRAM_BOT_TOKEN=1:IDLE TELEGRAM_API_URL="http://127.0.0.1:$port")
  (cd "$dir" && exec env -i "${vars[@]}" "$bin" serve 2>"$dir/log") &
  pid=$!; pids+=("$pid")
  sleep 5
  before=$(ticks "$pid"); sleep "$seconds"; after=$(ticks "$pid")
  used=$((after - before))
  echo "telegram $mode: $used ticks in $seconds s = $(awk "BEGIN {printf \"%.3f\", $used / $seconds}") % of a core"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
done
