#!/usr/bin/env bash
# Throughput of trivial tasks over 4 loopback sshd hosts (8 slots each), dts against GNU
# parallel -S measured in the same run. Needs root (bench/lab.sh creates a bench user).
# usage: bench/throughput.sh [DTS_TASKS=2000] [PARALLEL_TASKS=200]
set -euo pipefail
cd "$(dirname "$0")/.."
DTS_TASKS=${1:-2000}; PAR_TASKS=${2:-200}; HOSTS=4; RUNS=3
command -v parallel >/dev/null || { apt-get update -qq && apt-get install -y -qq parallel >/dev/null; }
cargo build --release -q
LAB=$(bench/lab.sh "$HOSTS")
trap 'bench/lab.sh stop "$LAB"' EXIT
DTS=target/release/dts
now() { date +%s.%N; }
rate() { echo "scale=1; $1 / ($3 - $2)" | bc; }

best_dts=0
for _ in $(seq $RUNS); do
  t0=$(now)
  $DTS submit -H "$LAB/hosts.toml" --array "1-$DTS_TASKS" -- true 2>"$LAB/dts.err" || { cat "$LAB/dts.err" >&2; exit 1; }
  t1=$(now)
  r=$(rate "$DTS_TASKS" "$t0" "$t1"); echo "dts:          $DTS_TASKS tasks, $r tasks/s"
  best_dts=$(echo "if ($r > $best_dts) $r else $best_dts" | bc)
done
servers=$(seq -s, -f '8/h%g' 1 "$HOSTS")
t0=$(now)
seq "$PAR_TASKS" | parallel --ssh "ssh -F $LAB/ssh_config" -S "$servers" true
t1=$(now)
par=$(rate "$PAR_TASKS" "$t0" "$t1"); echo "GNU parallel: $PAR_TASKS tasks, $par tasks/s"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(parallel --version | head -1); $(/usr/sbin/sshd -V 2>&1 | head -1)"
echo "ratio (best dts / GNU parallel): $(echo "scale=1; $best_dts / $par" | bc)x"
