#!/usr/bin/env bash
# Regenerate link/startup-order.txt: the functions valor runs when it starts
# and idles, then serves one Telegram turn. Release builds place them next to
# each other in .text (build.rs hands the file to lld as
# --symbol-ordering-file), so an idle process maps about 3 MiB of its code
# instead of nearly all of it (BENCHMARKS.md, "Idle RSS"). A stale file only
# costs memory, never correctness: names the code no longer has are ignored.
#
# How: an unstripped release build of the same code runs under valgrind's
# callgrind, which names every function executed — once as a plain
# `valor serve` (start-up, health checks, the workers' and sampler's ticks),
# once under the load harness (Telegram polling against its fake Bot API and
# one turn against its fake model). The plain run's functions come first.
# Needs valgrind (apt-get install valgrind). Usage: bash scripts/startup-order.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-target}"
work=$(mktemp -d)
pid=0
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

# Same code and profile, symbols kept (only the final link differs).
cargo build --release --locked --quiet --example load
cargo rustc --release --locked --quiet --bin valor -- -C strip=none
cp "$target/release/valor" "$work/valor"
# 1. A plain `valor serve`, idle for 15 s after its first /health 200.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir "$work/run"
(cd "$work/run" && exec env -i PATH="$PATH" HOME="$work/run" VALOR_HTTP_ADDR="127.0.0.1:$port" \
  valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no \
  --callgrind-out-file="$work/serve.out" "$work/valor" serve 2>"$work/serve.log") &
pid=$!
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.1
done
sleep 15
kill -TERM "$pid"; wait "$pid" || true

# 2. Telegram on, one turn: the load harness starts valor through a wrapper.
cat >"$work/wrapped-valor" <<WRAP
#!/bin/sh
exec valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no \
  --callgrind-out-file="$work/telegram.out" "$work/valor" "\$@"
WRAP
chmod +x "$work/wrapped-valor"
"$target/release/examples/load" --valor-bin "$work/wrapped-valor" --chats 1 --messages 1 >"$work/load.log" 2>&1 \
  || { cat "$work/load.log"; exit 1; }

executed() { sed -n 's/^c\{0,1\}fn=//p' "$1" | sed "s/'[0-9]*\$//" | sort -u; }
nm --defined-only "$work/valor" | awk '$2 ~ /^[tTwW]$/ {print $3}' | sort -u >"$work/defined"
comm -12 "$work/defined" <(executed "$work/serve.out") >"$work/serve"
comm -12 "$work/defined" <(executed "$work/telegram.out") | comm -13 "$work/serve" - >"$work/telegram"
mkdir -p link
cat "$work/serve" "$work/telegram" >link/startup-order.txt
echo "link/startup-order.txt: $(wc -l <"$work/serve") + $(wc -l <"$work/telegram") functions of $(wc -l <"$work/defined")"
# The next plain release build links with the new order (and strips again).
