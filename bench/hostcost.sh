#!/usr/bin/env bash
# CPU that one trivial task costs on its host (sshd, the login shell, the prelude and its
# watcher), measured system-wide: busy CPU time from /proc/stat over a run of TASKS `true`
# tasks on 4 loopback hosts, minus the coordinator's own CPU (from /usr/bin/time), per task.
# Interleaves ROUNDS runs of each binary given, so that the machine's drift hits them alike.
# usage: bench/hostcost.sh [TASKS=2000] [ROUNDS=3] [BINARY ...]   (default: this build)
#   e.g. bench/hostcost.sh 2000 3 /tmp/dts-before target/release/dts
source "$(dirname "$0")/common.sh"
TASKS=${1:-2000}; ROUNDS=${2:-3}; shift 2 || true
BINARIES=("$@"); [ ${#BINARIES[@]} -gt 0 ] || { build; BINARIES=("$DTS"); }
lab 4
trap lab_stop EXIT
busy() { awk '/^cpu / {print $2+$3+$4+$7+$8}' /proc/stat; }   # user nice system irq softirq
hz=$(getconf CLK_TCK)
for round in $(seq 1 "$ROUNDS"); do
  for bin in "${BINARIES[@]}"; do
    b0=$(busy)
    own=$( { /usr/bin/time -f '%U %S' "$bin" submit -q --output none -H "$LAB/hosts.toml" \
      --array "1-$TASKS" -- true >/dev/null 2>/dev/null; } 2>&1 | tail -1)
    b1=$(busy)
    total=$(echo "scale=4; ($b1 - $b0) / $hz" | bc)
    dts=$(echo "$own" | awk '{print $1 + $2}')
    echo "round $round  $bin  host CPU per task $(echo "scale=3; ($total - $dts) * 1000 / $TASKS" | bc) ms  coordinator $(echo "scale=3; $dts * 1000 / $TASKS" | bc) ms"
  done
done
