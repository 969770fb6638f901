#!/usr/bin/env bash
# The whole test suite, from a fresh machine with only the Rust toolchain and Python:
# formatting, lints, unit tests and end-to-end tests against the simulator.
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds are kept outside the clone so a fresh clone (and CI) rebuilds only what changed.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wxcc-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --locked "$@"
