#!/usr/bin/env bash
# Instructions per item of the pool's chunk path (`map` of a trivial task in chunks of
# 4 096 items, as automatic chunking makes them), counted by callgrind in the parent and in the two workers: a measure
# beside the wall-clock benchmark (`shoal bench pool-map`) that the machine's noise
# does not move.
#
# crates/shoal/benches/pool_instructions.rs runs under callgrind twice, with N and 2N
# items; (instructions(2N) - instructions(N)) / N is the cost of one item, the start
# of the pool cancelled out. The workers are forked (callgrind follows them, each into
# its own file); their counts are summed. Waits that spin count too, so figures move by
# a few instructions between runs. Prints a Markdown table.
#
# The pool watches its workers through pidfds: valgrind must know pidfd_open (3.24
# does, Debian bookworm's 3.19 does not). VALGRIND names the valgrind to use.
#
#   scripts/callgrind-pool.sh [N]     (N defaults to 500000)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
vg="${VALGRIND:-valgrind}"
command -v "$vg" >/dev/null || { echo "callgrind-pool.sh: no valgrind ($vg)" >&2; exit 2; }
n="${1:-500000}"

bin=$(cargo bench -q -p shoal --bench pool_instructions --no-run --message-format=json 2>/dev/null \
  | grep '"name":"pool_instructions"' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "callgrind-pool.sh: the pool_instructions benchmark did not build" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Prints the parent's and the workers' instructions of one run of `count` items.
count_ir() {
  local count=$1 dir="$out/$1" pid
  mkdir -p "$dir"
  "$vg" --tool=callgrind --callgrind-out-file="$dir/cg.%p.out" "$bin" "$count" \
    >/dev/null 2>"$dir/log" &
  pid=$!
  wait "$pid" || { cat "$dir/log" >&2; exit 2; }
  local parent workers=0 f ir
  parent=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$dir/cg.$pid.out")
  for f in "$dir"/cg.*.out; do
    [ "$f" = "$dir/cg.$pid.out" ] && continue
    ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$f")
    workers=$((workers + ir))
  done
  echo "$parent $workers"
}

read -r p1 w1 < <(count_ir "$n")
read -r p2 w2 < <(count_ir $((2 * n)))
echo "| side | instructions per item |"
echo "|---|---|"
awk -v a="$p1" -v b="$p2" -v n="$n" 'BEGIN { printf "| parent | %.1f |\n", (b - a) / n }'
awk -v a="$w1" -v b="$w2" -v n="$n" 'BEGIN { printf "| workers (both) | %.1f |\n", (b - a) / n }'
awk -v a="$((p1 + w1))" -v b="$((p2 + w2))" -v n="$n" 'BEGIN { printf "| all | %.1f |\n", (b - a) / n }'
