#!/usr/bin/env bash
# Runs every Rust example of crates/shoal/examples and checks its output against the
# "Output:" block of its doc comment. Exit status 1 on a mismatch.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
cargo build -q -p shoal --examples
failed=0
for src in crates/shoal/examples/*.rs; do
  name=$(basename "$src" .rs)
  want=$(sed -n '/^\/\/! Output:$/,/^$/p' "$src" | sed '1d;/^$/d;s|^//! \{0,1\}||')
  if got=$(timeout 120 "$CARGO_TARGET_DIR/debug/examples/$name" 2>&1) && [ "$got" = "$want" ]; then
    echo "ok   $name"
  else
    echo "FAIL $name"; echo "  expected:"; echo "$want"; echo "  got:"; echo "$got"
    failed=1
  fi
done
exit $failed
