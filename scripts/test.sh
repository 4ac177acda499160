#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, lints, unit, integration and
# doc tests. This is the command the README gives and the one CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
echo "== unit and integration tests (nextest)"
cargo nextest run --workspace --all-features --no-fail-fast
echo "== doc tests"
cargo test --workspace --all-features --doc --quiet
echo "== no shared-memory segment left behind"
left=$(ls /dev/shm | grep '^shoal-' || true)
if [ -n "$left" ]; then
  echo "segments left in /dev/shm by the tests:"; echo "$left"; exit 1
fi
