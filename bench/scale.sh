#!/usr/bin/env bash
# Scale: 100 000 trivial tasks over 4 hosts × 8 slots, and 20 000 over 64 inventory hosts
# (16 sshd, each under 4 names, 2 slots per name). Reports coordinator peak RSS, CPU time
# per task, run store size, and throughput against a 2000-task run.
# usage: bench/scale.sh [TASKS=100000]      (needs root)
source "$(dirname "$0")/common.sh"
BIG=${1:-100000}
build
machine
# measure LABEL TASKS INVENTORY ARGS...: one run under /usr/bin/time.
measure() {
  local label=$1 n=$2 inv=$3; shift 3
  local before; before=$(ls "$DTS_STATE_DIR" 2>/dev/null | wc -l)
  /usr/bin/time -f "%e %U %S %M" -o /tmp/dts-scale.time \
    "$DTS" submit -q -H "$inv" --output none --array "1-$n" "$@" -- true
  read -r wall user sys rss < /tmp/dts-scale.time
  local run; run=$(ls -t "$DTS_STATE_DIR" | head -1)
  local store; store=$(du -sk "$DTS_STATE_DIR/$run" | cut -f1)
  printf '%-28s %7s tasks %8s tasks/s  peak RSS %5.1f MB  CPU %6.1f us/task  store %6.1f MB\n' \
    "$label" "$n" "$(rate "$n" 0 "$wall")" "$(echo "$rss / 1024" | bc -l)" \
    "$(echo "($user + $sys) * 1000000 / $n" | bc -l)" "$(echo "$store / 1024" | bc -l)"
}
lab 4
trap lab_stop EXIT
measure "4 hosts x 8 slots" 2000 "$LAB/hosts.toml"
measure "4 hosts x 8 slots" "$BIG" "$LAB/hosts.toml"
lab_stop
lab 16
{
  echo '[defaults]'; echo 'user = "dtsbench"'; echo "identity = \"$LAB/userkey\""
  echo "known_hosts = \"$LAB/known_hosts\""; echo 'slots = 2'
  for i in $(seq 1 16); do for n in 1 2 3 4; do
    printf '\n[[host]]\nname = "s%02d-%d"\naddress = "%s.%s"\nport = %s\n' "$i" "$n" "${LAB_NET:-127.0.0}" $((i+1)) $((${LAB_PORT:-2200}+i))
  done; done
} > "$LAB/hosts64.toml"
measure "64 names x 2 slots" 20000 "$LAB/hosts64.toml"
