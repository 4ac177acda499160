#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, lints, unit, integration and
# doc tests. This is the command the README gives and the one CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"

# The cluster tests start their own redis-server (and fail without one).
if ! command -v redis-server >/dev/null 2>&1; then
  echo "== installing redis-server (Debian package) for the cluster tests"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
echo "== unit and integration tests (nextest)"
cargo nextest run --workspace --all-features --no-fail-fast
echo "== doc tests"
cargo test --workspace --all-features --doc --quiet
echo "== fuzz targets, a short bounded run each (cargo-fuzz on nightly)"
if cargo +nightly fuzz --version >/dev/null 2>&1; then
  for target in frame_decoder handshake; do
    corpus=$(mktemp -d)
    cargo +nightly fuzz run --target-dir "$HOME/.cache/shoal-fuzz-target" -O "$target" \
      "$corpus" "fuzz/seeds/$target" -- -max_total_time=20 -print_final_stats=1 2>&1 | awk -v t="$target" '/executed_units/ {print t ": " $0}'
    rm -rf "$corpus"
  done
else
  echo "skipped: cargo-fuzz or the nightly toolchain is missing (.ci/run installs cargo-fuzz)"
fi
echo "== no shared-memory segment left behind"
left=$(ls /dev/shm | grep '^shoal-' || true)
if [ -n "$left" ]; then
  echo "segments left in /dev/shm by the tests:"; echo "$left"; exit 1
fi
