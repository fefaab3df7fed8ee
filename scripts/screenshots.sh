#!/usr/bin/env bash
# Regenerate the README's screenshots (docs/screenshots/web-chat.png and
# status.png) with the real binary and the model stand-in (aimock) loaded
# with tests/fixtures/screenshots/aimock.json, through headless Chromium
# (tests/browser/screenshots.mjs). Look at them before committing.
# Usage: bash scripts/screenshots.sh        (builds the debug binary first)
#        bash scripts/screenshots.sh BIN    (uses BIN as it is)
# Needs node_modules (npm ci) and Chromium (CHROMIUM_PATH, default
# /usr/bin/chromium); emoji need a colour emoji font (Debian:
# fonts-noto-color-emoji), or they show as boxes.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
if [ $# -ge 1 ]; then
  bin=$1
else
  cargo build --locked --quiet
  bin="$target/debug/valor"
fi
fc-list 2>/dev/null | grep -qi emoji || echo "warning: no emoji font installed; emoji will show as boxes" >&2

work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir "$work/fixtures"
cp tests/fixtures/screenshots/aimock.json "$work/fixtures/"
mock_port=$(free_port)
node node_modules/@copilotkit/aimock/dist/cli.js -p "$mock_port" --strict -f "$work/fixtures" >"$work/aimock.log" 2>&1 &
pids+=($!)

port=$(free_port)
(cd "$work" && exec env -i PATH="$PATH" HOME="$work" \
  VALOR_DATA_DIR="$work/data" VALOR_HTTP_ADDR="127.0.0.1:$port" \
  ANTHROPIC_API_KEY=sk-ant-screenshots ANTHROPIC_BASE_URL="http://127.0.0.1:$mock_port" \
  VALOR__RESOURCES__SAMPLE_INTERVAL_SECS=1 VALOR__INTENT__USE_MODEL=false \
  "$bin" serve 2>"$work/valor.log") &
pids+=($!)
for _ in $(seq 1 200); do
  curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && curl -fs "http://127.0.0.1:$mock_port/__aimock/journal" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$port/ready" >/dev/null || { cat "$work/valor.log" >&2; exit 1; }
sleep 8 # a few resource samples, so the Status charts have a line to draw

mkdir -p docs/screenshots
node tests/browser/screenshots.mjs "http://127.0.0.1:$port/" docs/screenshots/web-chat.png docs/screenshots/status.png
