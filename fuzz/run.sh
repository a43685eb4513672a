#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each) with cargo-fuzz (libFuzzer).
# usage: fuzz/run.sh [SECONDS] [TARGET...]
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable toolchain the sanitizer flags
# are enabled with RUSTC_BOOTSTRAP=1. Findings land in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${1:-60}; shift || true
TARGETS=("$@"); [ ${#TARGETS[@]} -gt 0 ] || TARGETS=(array nodeset template inventory)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustc --version | grep -q nightly || export RUSTC_BOOTSTRAP=1
for t in "${TARGETS[@]}"; do
  echo "== $t: ${SECONDS_EACH}s"
  cargo fuzz run "$t" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 2>&1 \
    | grep -E "^#[0-9]+.*(DONE|pulse)|ERROR|SUMMARY|Done [0-9]+ runs" | tail -3
done
