#!/usr/bin/env bash
# Load harness: build the release binary and the harness, then run
# examples/load against it. Arguments go to the harness, e.g.
#   bash scripts/load.sh --chats 1000
#   bash scripts/load.sh --chats 100 --messages 100   # RSS growth after 10,000 turns
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
# Two builds: the example's dev-dependencies add features (tokio's test-util)
# that would change valor's symbol names and so miss link/startup-order.txt;
# `valor` is built exactly as `cargo build --release` builds it.
cargo build --release --locked --quiet --bin valor
cargo build --release --locked --quiet --example load
exec "$target/release/examples/load" --valor-bin "$target/release/valor" "$@"
