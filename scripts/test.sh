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
echo "== API docs build without a broken link"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --quiet
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
echo "== Python package: build the wheel (what 'pip install .' builds), install it into a virtual environment, ruff, pytest"
venv="${SHOAL_VENV:-$HOME/.cache/shoal-venv}"
# maturin, as the build backend without isolation, is run from the PATH.
export PATH="$venv/bin:$PATH"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip_cache="$HOME/.cache/pip"
"$venv/bin/pip" install -q --cache-dir "$pip_cache" "maturin>=1.16,<2" pytest ruff faster-fifo
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$venv/bin/pip" wheel -q --cache-dir "$pip_cache" --no-build-isolation --no-deps -w "$wheels" .
wheel=$(ls "$wheels"/shoal-*.whl)
"$venv/bin/pip" install -q --force-reinstall --no-deps "$wheel"
"$venv/bin/ruff" check crates/shoal-py examples/python
"$venv/bin/python" -m pytest -q -p no:cacheprovider crates/shoal-py/tests
echo "== Rust examples, output checked (after the wheel: one feeds a Python consumer)"
SHOAL_PYTHON="$venv/bin/python" bash scripts/run-examples.sh
echo "== Python examples, every start method, output checked"
"$venv/bin/python" examples/python/run_all.py
echo "== the README's first screen: its commands exist and run, its Python example runs"
bash scripts/check-readme.sh "$venv/bin/python"

echo "== CPython's multiprocessing tests against shoal and the standard library, every start method"
"$venv/bin/python" crates/shoal-py/tests/cpython_suite.py

echo "== the same abi3 wheel on the oldest and newest Python of the machine"
for version in 3.9 3.13; do
  # pyenv's own build first: its shim on the PATH answers only where that version is
  # selected (a .python-version), which a fresh clone is not.
  python=$(ls -d "$HOME"/.pyenv/versions/"$version".*/bin/python 2>/dev/null | tail -1 || true)
  if [ -z "$python" ] || ! "$python" -c 'import sys' 2>/dev/null; then
    python=$(command -v "python$version" || true)
  fi
  if [ -z "$python" ] || ! "$python" -c 'import sys' 2>/dev/null; then
    echo "skipped: no Python $version on this machine"
    continue
  fi
  other="$HOME/.cache/shoal-venv-$version"
  [ -x "$other/bin/python" ] || "$python" -m venv "$other"
  "$other/bin/pip" install -q --cache-dir "$pip_cache" pytest
  "$other/bin/pip" install -q --force-reinstall --no-deps "$wheel"
  echo "Python $version (every test but the crash storms, which ran above):"
  "$other/bin/python" -m pytest -q -p no:cacheprovider -m "not storm" crates/shoal-py/tests
done

echo "== no shared-memory segment left behind"
left=$(ls /dev/shm | grep '^shoal-' || true)
if [ -n "$left" ]; then
  echo "segments left in /dev/shm by the tests:"; echo "$left"; exit 1
fi
