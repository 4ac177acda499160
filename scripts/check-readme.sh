#!/usr/bin/env bash
# Checks the README's first screen: every command of its first ```text block exists and
# runs, and its first ```python block runs. Usage: scripts/check-readme.sh [PYTHON]
# (PYTHON: an interpreter with the package installed; without it the Python example is
# not run and the script says so). The Rust example is built outside the workspace and
# run by crates/shoal/tests/outside_crate.rs.
#
# - `cargo run ... -- bench`: run as written, with `--quick` and one case appended (the
#   full table takes a minute); its table must name the case.
# - after the three: `bash scripts/shoal.sh bench`, which the README names below them,
#   the same way; the executable it built must be static and not position-independent.
# - `bash scripts/test.sh`: not run (this script is one of its steps); the file must
#   exist, parse, and be what `.ci/run` runs.
# - `pip install .`: the root pyproject.toml must build the package with maturin from
#   the manifest it names; scripts/test.sh builds that same wheel (`pip wheel .`) and
#   installs it, and the Python example runs on it here.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
python="${1:-}"

fail() {
  echo "README check failed: $*" >&2
  exit 1
}

# The first ```text block: the commands, one a line, each with its `# comment`.
block=$(awk '/^```text$/ {inside=1; next} inside && /^```$/ {exit} inside {print}' README.md)
[ -n "$block" ] || fail "README.md has no \`\`\`text block of commands"

checked=0
while IFS= read -r line; do
  cmd=$(printf '%s' "${line%%#*}" | sed 's/[[:space:]]*$//')
  [ -n "$cmd" ] || continue
  case "$cmd" in
    "cargo run "*" -- bench")
      case_name="throughput/64B/shoal-queue"
      out=$(timeout 900 $cmd --quick "$case_name" 2>&1) ||
        fail "\`$cmd\` failed:"$'\n'"$out"
      grep -q "shoal-queue" <<<"$out" || fail "\`$cmd --quick $case_name\` printed no shoal-queue row:"$'\n'"$out"
      echo "ok   $cmd (run with --quick $case_name)"
      ;;
    "bash scripts/test.sh")
      [ -f scripts/test.sh ] || fail "scripts/test.sh does not exist"
      bash -n scripts/test.sh || fail "scripts/test.sh does not parse"
      grep -qx "exec $cmd" .ci/run || fail "\`.ci/run\` does not run \`$cmd\`"
      echo "ok   $cmd (exists, parses, is what .ci/run runs)"
      ;;
    "pip install .")
      grep -q '^build-backend = "maturin"$' pyproject.toml ||
        fail "pyproject.toml does not build with maturin"
      manifest=$(sed -n 's/^manifest-path = "\(.*\)"$/\1/p' pyproject.toml)
      [ -n "$manifest" ] && [ -f "$manifest" ] ||
        fail "pyproject.toml names no manifest-path that exists (\"$manifest\")"
      grep -q 'pip" wheel .* \.$' scripts/test.sh ||
        fail "scripts/test.sh no longer builds the wheel \`pip install .\` builds"
      echo "ok   $cmd (pyproject.toml builds $manifest with maturin; scripts/test.sh builds and installs that wheel)"
      ;;
    *)
      fail "the README names \`$cmd\`, which this script does not know how to check"
      ;;
  esac
  checked=$((checked + 1))
done <<<"$block"
[ "$checked" -eq 3 ] || fail "expected the README's three commands, found $checked"

# The static build the README names below its commands (and BENCHMARKS.md measures).
grep -q '`bash scripts/shoal.sh bench`' README.md || fail "README.md no longer names scripts/shoal.sh"
out=$(timeout 900 bash scripts/shoal.sh bench --quick throughput/64B/shoal-queue 2>&1) ||
  fail "\`bash scripts/shoal.sh bench\` failed:"$'\n'"$out"
grep -q "shoal-queue" <<<"$out" || fail "\`bash scripts/shoal.sh bench\` printed no shoal-queue row:"$'\n'"$out"
# What the script promises: no dynamic loader (static) and a fixed load address.
headers=$(readelf -lh "$CARGO_TARGET_DIR/release/shoal")
if grep -q INTERP <<<"$headers" || ! grep -q "EXEC (Executable file)" <<<"$headers"; then
  fail "scripts/shoal.sh built a dynamic or position-independent executable"
fi
echo "ok   bash scripts/shoal.sh bench (run with --quick; the executable is static and non-PIE)"

# The first ```python block, run as a script with the installed package.
example=$(awk '/^```python$/ {inside=1; next} inside && /^```$/ {exit} inside {print}' README.md)
[ -n "$example" ] || fail "README.md has no \`\`\`python block"
if [ -z "$python" ]; then
  echo "skipped: the README's Python example (no interpreter given)"
  exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
printf '%s\n' "$example" >"$dir/readme_example.py"
out=$(cd "$dir" && timeout 120 "$python" readme_example.py 2>&1) ||
  fail "the README's Python example failed:"$'\n'"$out"
# It prints the four children's names and the counter they raised.
[ "$out" = "['Process-1', 'Process-2', 'Process-3', 'Process-4'] 4" ] ||
  fail "the README's Python example printed something else:"$'\n'"$out"
echo "ok   the README's Python example"
