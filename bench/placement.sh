#!/bin/sh
# Placement quality on simulated clusters, seeds 1-12 (issue 17 item 4): prints one
# `dts simulate` table per setup. DTS=path/to/dts to compare builds; extra arguments
# (e.g. --speculate) go to every run.
set -eu
DTS=${DTS:-target/debug/dts}
run() {
    echo "\$ dts simulate $* --seed 1 --repeat 12"
    "$DTS" simulate "$@" --seed 1 --repeat 12
    echo
}
run --hosts 4x8,4x8@0.4 --tasks 5000 --dist lognormal "$@"
run --hosts 8x8 --tasks 10000 --dist exp "$@"
run --hosts 8x8 --tasks 5000 --dist lognormal "$@"
run --hosts 8x4,8x4@0.5 --tasks 10000 --dist exp "$@"
run --hosts 4x8,4x8@0.5 --tasks 64 --dist exp "$@"
run --hosts 2x16@2,6x8 --tasks 300 --dist lognormal "$@"
run --hosts 4x8,4x8@0.4 --tasks 5000 --dist pareto:2,1 "$@"
