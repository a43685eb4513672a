#!/usr/bin/env bash
# Coordinator instructions per task, stable on a noisy machine: one dts run of TASKS trivial
# tasks over 4 loopback hosts under valgrind's callgrind (sshd and the tasks are not
# counted), then the functions that cost the most.
# usage: bench/callgrind.sh [TASKS=1000]      (needs root and valgrind)
source "$(dirname "$0")/common.sh"
TASKS=${1:-1000}
need valgrind valgrind
build
lab 4
trap 'lab_stop; rm -f /tmp/dts-callgrind.out' EXIT
valgrind --tool=callgrind --callgrind-out-file=/tmp/dts-callgrind.out \
  "$DTS" submit -q -H "$LAB/hosts.toml" --array "1-$TASKS" -- true 2>/tmp/dts-callgrind.log
total=$(awk '/Collected/ {print $4}' /tmp/dts-callgrind.log)
echo "dts coordinator: $total instructions for $TASKS tasks = $((total / TASKS)) per task (connection set-up included)"
echo "most expensive functions (exclusive):"
callgrind_annotate /tmp/dts-callgrind.out 2>/dev/null | awk '/file:function/ {on=1; next} on && /^ *[0-9]/ && n++ < 12' \
  | sed -E 's#/root/.cargo/registry/src/[^/]+/##; s#\[[^]]*\]$##' | cut -c1-130
