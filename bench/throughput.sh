#!/usr/bin/env bash
# Throughput of trivial tasks (`true`) over 4 and 16 loopback sshd hosts with OpenSSH's
# default limits, 8 concurrent tasks per host, measured in one run for:
#   ceiling   a bare persistent-connection loop (examples/ceiling.rs): the most SSH allows;
#             also running dts's wrapper script instead of `true`, which shows what the
#             no-orphans guarantee costs on the host
#   dts       each placement algorithm, per-task channels (one sshd session per task,
#             DTS_EXECUTION=per-task)
#   dts warm  warm workers (execution = "warm", here through DTS_EXECUTION=warm)
#   yardstick ../shared/lab/warm: long-lived shells with no framing, cleanup or error
#             handling, in its exact-ish modes pgroup (bash set -m) and termexec (exec sh -c),
#             and fork (one fork per task, inexact): how fast a warm design could go here
#   cm+xargs  what an experienced user does by hand: one OpenSSH ControlMaster per host,
#             xargs -P spreading `ssh -S master host true` over them
#   parallel  GNU parallel -S 8/h1,8/h2,... (fewer tasks: it is slow)
# usage: bench/throughput.sh [HOST_COUNTS...]     (default: 4 16; needs root)
source "$(dirname "$0")/common.sh"
COUNTS=("$@"); [ ${#COUNTS[@]} -gt 0 ] || COUNTS=(4 16)
build
machine
# ceiling_rate TASKS CMD: tasks/s of the bare loop running CMD on every lab host.
ceiling_rate() {
  $CEILING dtsbench "$LAB/userkey" "$LAB/known_hosts" 8 "$1" "$2" "${ADDRS[@]}" | awk '{print $(NF-1)}'
}
# The warm yardstick, built once outside the shared tree.
YARD_DIR=${YARD_DIR:-$ROOT/../shared/lab/warm}
YARD=${YARD:-/tmp/warm-yardstick-target/release/warm}
[ -x "$YARD" ] || (cd "$YARD_DIR" && CARGO_TARGET_DIR=/tmp/warm-yardstick-target cargo build --release -q)
# yard_rate TASKS MODE: tasks/s of the yardstick, 8 workers on one connection per host.
yard_rate() {
  $YARD dtsbench "$LAB/userkey" 8 1 "$1" "$2" true "${ADDRS[@]}" | awk '{print $(NF-1)}'
}
for H in "${COUNTS[@]}"; do
  lab "$H"
  trap lab_stop EXIT
  N=$((1000 * H)); PN=$((50 * H)); XN=$((250 * H)); SLOTS=$((8 * H))
  echo "== $H hosts, 8 slots each"
  # The machine drifts by several per cent within minutes: the two ceilings are measured
  # before and after the dts runs, and their means are what dts is compared with.
  c1=$(ceiling_rate "$N" true); w1=$(ceiling_rate "$N" "$($DTS wrapper -- true)")
  best=0; sum=0
  for algo in round-robin least-load consistent-hash random; do
    t0=$(now); DTS_EXECUTION=per-task $DTS submit -q -H "$LAB/hosts.toml" --algo "$algo" --array "1-$N" -- true; t1=$(now)
    r=$(rate "$N" "$t0" "$t1"); printf 'dts %-15s %s tasks, %s tasks/s\n' "$algo:" "$N" "$r"
    best=$(echo "if ($r > $best) $r else $best" | bc); sum=$(echo "$sum + $r" | bc)
  done
  t0=$(now); DTS_EXECUTION=warm $DTS submit -q -H "$LAB/hosts.toml" --array "1-$N" -- true; t1=$(now)
  warm=$(rate "$N" "$t0" "$t1"); printf 'dts %-15s %s tasks, %s tasks/s\n' "warm:" "$N" "$warm"
  for mode in pgroup termexec fork; do
    printf 'yardstick %-9s %s tasks, %s tasks/s\n' "$mode:" "$N" "$(yard_rate "$N" "$mode")"
  done
  c2=$(ceiling_rate "$N" true); w2=$(ceiling_rate "$N" "$($DTS wrapper -- true)")
  ceiling=$(echo "scale=1; ($c1 + $c2) / 2" | bc); wrapped=$(echo "scale=1; ($w1 + $w2) / 2" | bc)
  echo "ceiling:          $N tasks, $ceiling tasks/s (before dts $c1, after $c2)"
  echo "ceiling+wrapper:  $N tasks, $wrapped tasks/s (before dts $w1, after $w2)"
  for i in $(seq 1 "$H"); do
    ssh -F "$LAB/ssh_config" -o ControlMaster=yes -o ControlPath="$LAB/cm-h$i" -o ControlPersist=yes -fN "h$i"
  done
  t0=$(now)
  seq "$XN" | xargs -P "$SLOTS" -n 1 sh -c 'h=$(( $1 % '"$H"' + 1 )); exec ssh -F '"$LAB"'/ssh_config -o ControlPath='"$LAB"'/cm-h$h h$h true' _
  t1=$(now)
  cm=$(rate "$XN" "$t0" "$t1"); echo "cm+xargs:         $XN tasks, $cm tasks/s"
  for i in $(seq 1 "$H"); do ssh -F "$LAB/ssh_config" -o ControlPath="$LAB/cm-h$i" -O exit "h$i" 2>/dev/null || true; done
  servers=$(seq -s, -f '8/h%g' 1 "$H")
  t0=$(now); seq "$PN" | parallel --ssh "ssh -F $LAB/ssh_config" -S "$servers" true; t1=$(now)
  par=$(rate "$PN" "$t0" "$t1"); echo "GNU parallel:     $PN tasks, $par tasks/s"
  echo "ratios (best dts): $(ratio "$best" "$par")x GNU parallel, $(ratio "$best" "$cm")x cm+xargs, $(echo "scale=0; 100 * $best / $ceiling" | bc)% of the ceiling, $(echo "scale=0; 100 * $best / $wrapped" | bc)% of the ceiling running the wrapper"
  echo "dts warm: $(ratio "$warm" "$ceiling")x the ceiling, $(ratio "$warm" "$best")x the best per-task dts"
  mean=$(echo "scale=1; $sum / 4" | bc)
  echo "mean of the 4 algorithms: $mean tasks/s, $(echo "scale=0; 100 * $mean / $ceiling" | bc)% of the ceiling, $(echo "scale=0; 100 * $mean / $wrapped" | bc)% of the ceiling running the wrapper"
  lab_stop; trap - EXIT
done
