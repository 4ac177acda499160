#!/usr/bin/env bash
# Runs every Rust example of crates/shoal/examples and crates/shoal-cluster/examples that
# has an "Output:" block in its doc comment, and checks its output against that block.
# Exit status 1 on a mismatch.
#
# Two examples need more than a Rust toolchain: python_consumer runs a Python script
# with the package `shoal` installed (the interpreter is $SHOAL_PYTHON, else python3;
# scripts/test.sh runs this script after it installs the wheel), and two_machines
# starts a redis-server (scripts/test.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
cargo build -q -p shoal -p shoal-cluster --examples
failed=0
for src in crates/shoal/examples/*.rs crates/shoal-cluster/examples/*.rs; do
  name=$(basename "$src" .rs)
  grep -q '^//! Output:$' "$src" || continue   # a program to run by hand (its doc says how)
  want=$(sed -n '/^\/\/! Output:$/,/^$/p' "$src" | sed '1d;/^$/d;s|^//! \{0,1\}||')
  if got=$(timeout 120 "$CARGO_TARGET_DIR/debug/examples/$name" 2>&1) && [ "$got" = "$want" ]; then
    echo "ok   $name"
  else
    echo "FAIL $name"; echo "  expected:"; echo "$want"; echo "  got:"; echo "$got"
    failed=1
  fi
done
exit $failed
