#!/usr/bin/env bash
# Builds the `shoal` command (crates/shoal-cli) as a static, non-PIE executable, then
# runs it with the arguments given: `bash scripts/shoal.sh bench`.
#
# Why static: the spawn and forkserver start methods run a fresh copy of the program
# (`/proc/self/exe`), and what a child pays before its first instruction is mostly the
# loading of that program. A static, non-PIE executable has no dynamic loader, no
# shared library to map and no relocation to apply (nor the copy-on-write faults those
# relocations cause): a spawned child starts in about half the time of the default
# dynamic PIE build, and the forkserver, itself such a copy, forks with fewer mappings.
# `cargo run --release -p shoal-cli -- bench` builds and runs the same tool linked the
# default way. BENCHMARKS.md gives both.
#
# The flags go to the final crate only (`cargo rustc`): the dependencies are those of an
# ordinary release build, shared with `cargo build --release`. glibc's static archives
# come with the C toolchain that Rust links with.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target="${CARGO_TARGET_DIR:-$root/target}"
cargo rustc --quiet --release --manifest-path "$root/Cargo.toml" -p shoal-cli --bin shoal \
  --target-dir "$target" -- -C target-feature=+crt-static -C relocation-model=static
exec "$target/release/shoal" "$@"
