#!/usr/bin/env bash
# Instructions per message on the channels' hot paths, counted by callgrind (Debian's
# valgrind): a measure beside the wall-clock benchmarks that the machine's noise does
# not move, so that two versions of the code compare exactly.
#
# Each case of crates/shoal/benches/instructions.rs runs under callgrind twice, with N
# and 2N messages; (instructions(2N) - instructions(N)) / N is the cost of one message,
# start-up and channel creation cancelled out. Prints a Markdown table.
#
#   scripts/callgrind.sh [N] [CASE...]     (N defaults to 20000; every case by default)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
n="${1:-20000}"
shift || true
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(queue-bytes-8 queue-bytes-64 queue-u64 queue-batch64-8 pipe-bytes-8 pipe-bytes-64)

bin=$(cargo bench -q -p shoal --bench instructions --no-run --message-format=json 2>/dev/null \
  | grep '"name":"instructions"' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "callgrind.sh: the instructions benchmark did not build" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The total instructions of one run of `case` with `count` messages.
count_ir() {
  local case=$1 count=$2
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" "$bin" "$case" "$count" \
    >/dev/null 2>"$out/log" || { cat "$out/log" >&2; exit 2; }
  sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$out/cg.out"
}

echo "| case | instructions per message |"
echo "|---|---|"
for case in "${cases[@]}"; do
  one=$(count_ir "$case" "$n")
  two=$(count_ir "$case" $((2 * n)))
  awk -v c="$case" -v a="$one" -v b="$two" -v n="$n" \
    'BEGIN { printf "| %s | %.1f |\n", c, (b - a) / n }'
done
