#!/usr/bin/env bash
# The whole benchmark suite, in order; BENCHMARKS.md records its figures.
# usage: bench/all.sh      (needs root; about 15 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")"
./throughput.sh 4 16
./latency.sh
./scale.sh
./output.sh
./callgrind.sh
echo "placement decisions: cargo bench --bench placement; store writes: cargo bench --bench store"
