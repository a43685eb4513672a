#!/usr/bin/env bash
# CPU that one trivial task costs on its host (sshd, the login shell, the prelude and its
# watcher, the guard's share): the lab's sshd servers run in a cgroup of their own, so
# everything they start is counted and nothing else is (not dts, not other work on the
# machine). Runs TASKS `true` tasks on 4 loopback hosts per round, and interleaves ROUNDS
# rounds of each binary given so that the machine's drift hits them alike.
# usage: bench/hostcost.sh [TASKS=2000] [ROUNDS=3] [BINARY ...]   (default: this build)
#   e.g. bench/hostcost.sh 2000 3 /tmp/dts-before target/release/dts      (needs root)
source "$(dirname "$0")/common.sh"
TASKS=${1:-2000}; ROUNDS=${2:-3}; shift 2 || true
BINARIES=("$@"); [ ${#BINARIES[@]} -gt 0 ] || { build; BINARIES=("$DTS"); }
lab 4
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  CG=/sys/fs/cgroup/dts-hostcost-$$
  usage_ns() { awk '/^usage_usec/ {print $2 * 1000}' "$CG/cpu.stat"; }
else
  CG=/sys/fs/cgroup/cpuacct/dts-hostcost-$$
  usage_ns() { cat "$CG/cpuacct.usage"; }
fi
mkdir "$CG"
trap 'lab_stop; sleep 0.5; rmdir "$CG" 2>/dev/null' EXIT
for pidfile in "$LAB"/sshd_*.pid; do cat "$pidfile" > "$CG/cgroup.procs"; done
for round in $(seq 1 "$ROUNDS"); do
  for bin in "${BINARIES[@]}"; do
    u0=$(usage_ns)
    own=$( { /usr/bin/time -f '%U %S' "$bin" submit -q --output none -H "$LAB/hosts.toml" \
      --array "1-$TASKS" -- true >/dev/null 2>/dev/null; } 2>&1 | tail -1)
    u1=$(usage_ns)
    dts=$(echo "$own" | awk '{print $1 + $2}')
    echo "round $round  $bin  host CPU per task $(echo "scale=3; ($u1 - $u0) / 1000000 / $TASKS" | bc) ms  coordinator $(echo "scale=3; $dts * 1000 / $TASKS" | bc) ms"
  done
done
