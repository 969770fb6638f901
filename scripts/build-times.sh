#!/usr/bin/env bash
# Cold build times of the README's two commands, as a new user meets them: a fresh clone, a new
# (empty) target directory, the dependencies already downloaded (cargo fetch is not timed).
# Prints a Markdown table for the README. Run on an otherwise idle machine.
# Usage: scripts/build-times.sh [REPO (default: this clone)]
set -euo pipefail
repo="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone --quiet "$repo" "$work/wxcc"
cd "$work/wxcc"
export CARGO_TARGET_DIR="$work/target"
cargo fetch --locked --quiet

secs() { local t0=$SECONDS; "$@" >"$work/log" 2>&1 || { tail -20 "$work/log"; exit 1; }; echo $((SECONDS - t0)); }
fmt() { printf '%d min %02d s' $(($1 / 60)) $(($1 % 60)); }

demo=$(secs scripts/demo.sh)
tests=$(secs cargo test --locked --lib --tests --no-run)
release=""
if [ "${WITH_RELEASE:-}" = 1 ]; then
  release=$(secs cargo build --locked --release)
fi

echo "| step (cold, $(nproc) cores) | time |"
echo "|---|---|"
echo "| \`scripts/demo.sh\` (build + demo) | $(fmt "$demo") |"
echo "| \`scripts/test.sh\` build after it (test binaries) | $(fmt "$tests") |"
[ -n "$release" ] && echo "| \`cargo build --release\` (for comparison) | $(fmt "$release") |"
exit 0
