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
echo "== Python package: build, install into a virtual environment, ruff, pytest"
venv="${SHOAL_VENV:-$HOME/.cache/shoal-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip_cache="$HOME/.cache/pip"
"$venv/bin/pip" install -q --cache-dir "$pip_cache" "maturin>=1.16,<2" pytest ruff faster-fifo
"$venv/bin/pip" install -q --cache-dir "$pip_cache" --no-build-isolation --force-reinstall --no-deps .
"$venv/bin/ruff" check crates/shoal-py
"$venv/bin/python" -m pytest -q -p no:cacheprovider crates/shoal-py/tests
echo "== CPython's multiprocessing tests against shoal and the standard library, every start method"
"$venv/bin/python" crates/shoal-py/tests/cpython_suite.py
echo "== no shared-memory segment left behind"
left=$(ls /dev/shm | grep '^shoal-' || true)
if [ -n "$left" ]; then
  echo "segments left in /dev/shm by the tests:"; echo "$left"; exit 1
fi
