#!/bin/sh
# What any placement that cannot see task lengths can reach on issue 17's mixed-speed setup
# (examples/placement_bound.rs): round-robin, least-load, least-load told every length, and
# the family "a slower host starts tasks only while X seconds of work are queued", over
# seeds 1-12 (the goal's), 1-96 and 1-960 (about 40 s: the means of a dozen seeds are set by
# which host the one or two longest tasks land on). Extra arguments replace the seeds and setup:
#   bench/placement-bound.sh 13 108 8x4,8x4@0.5 exp 10000
set -eu
cd "$(dirname "$0")/.."
cargo build -q --release --example placement_bound
bound=target/release/examples/placement_bound
if [ $# -gt 0 ]; then
    "$bound" "$@"
else
    "$bound" 1 12
    echo
    "$bound" 1 96
    echo
    "$bound" 1 960
fi
