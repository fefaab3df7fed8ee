#!/usr/bin/env bash
# Load harness: build the release binary and the harness, then run
# examples/load against it. Arguments go to the harness, e.g.
#   bash scripts/load.sh --chats 1000
#   bash scripts/load.sh --chats 100 --messages 100   # RSS growth after 10,000 turns
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked --quiet --bin valor --example load
exec "$target/release/examples/load" --valor-bin "$target/release/valor" "$@"
