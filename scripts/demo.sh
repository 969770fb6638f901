#!/usr/bin/env bash
# The README's first command: builds wxcc (dev profile, hot crates optimised; see Cargo.toml)
# into the same target directory as scripts/test.sh, then runs `wxcc demo` against the built-in
# simulator, writing to ./wxcc-demo. Extra arguments go to `wxcc demo`.
# Built without the `query` feature (DataFusion), the largest part of a cold build; the shared
# dependencies are compiled with the same features as the full build (see Cargo.toml), so
# scripts/test.sh afterwards only adds DataFusion and the tests. Once DataFusion is built
# (scripts/test.sh ran, say), the demo is the full wxcc and ends with a SQL query.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wxcc-target}"
features=(--no-default-features --features aws,gcp,azure)
if compgen -G "$CARGO_TARGET_DIR/debug/deps/libdatafusion-*.rlib" >/dev/null; then
  features=()
fi
exec cargo run --locked --quiet "${features[@]}" -- demo "$@"
