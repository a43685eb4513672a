#!/usr/bin/env bash
# File staging throughput: SIZE_MB (default 1024) in 16 equal files over the 4 loopback
# sshd hosts of /work/shared/lab/sshlab.sh (user dtsbench, /bin/sh), measured in one run,
# alternating, ROUNDS times each (best kept):
#   scp     one scp per host (-O: the lab's sshd has no sftp subsystem), the four in
#           parallel, each copying its 4 files
#   rsync   the same with rsync -e ssh (whole files, nothing there before)
#   dts     dts submit --tf {} -- true: 16 tasks, round-robin over the 4 hosts (4 files each)
# Rates are payload bytes over wall time, connection set-up included for every tool.
# Then the cost of a cache hit: N tasks on one host, one slot, each needing the same 64 MB
# basefile (sent once, then N-1 hits), against the same tasks without it.
# usage: bench/staging.sh [SIZE_MB] [ROUNDS]      (needs root: sshlab.sh creates dtsbench)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SIZE_MB=${1:-1024}; ROUNDS=${2:-2}; FILES=16; HOSTS=4; HITS=64
DTS=$ROOT/target/release/dts
command -v rsync >/dev/null || { apt-get update -qq && apt-get install -y -qq rsync >/dev/null; }
cargo build --release -q
LAB=$(/work/shared/lab/sshlab.sh "$HOSTS")
WORK=$(mktemp -d /tmp/dts-stage-bench.XXXX)
export DTS_STATE_DIR=$WORK/state
trap 'rm -rf "$WORK"; ssh -F "$LAB/ssh_config" h1 "rm -rf stage-bench .cache/dts" || true' EXIT
now() { date +%s.%N; }
mbps() { echo "scale=1; $1 / 1048576 / ($3 - $2)" | bc; }

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(/usr/sbin/sshd -V 2>&1 | head -1)"
echo "== $SIZE_MB MB in $FILES files over $HOSTS hosts"
mkdir -p "$WORK/files"
per=$((SIZE_MB * 1048576 / FILES))
for i in $(seq -w 1 "$FILES"); do head -c "$per" /dev/urandom > "$WORK/files/f$i"; done
bytes=$((per * FILES))
(cd "$WORK/files" && ls) > "$WORK/items"
# Files of host h (1-based): every HOSTS-th, as round-robin places them.
files_of() { (cd "$WORK/files" && ls | awk -v h="$1" -v n="$HOSTS" '(NR - 1) % n == h - 1'); }
# Every lab host shares dtsbench's home: clear what the last method left there.
clear_hosts() { ssh -F "$LAB/ssh_config" h1 'rm -rf stage-bench .cache/dts; mkdir -p stage-bench'; }

run_scp() {
  for h in $(seq 1 "$HOSTS"); do
    (cd "$WORK/files" && scp -O -q -F "$LAB/ssh_config" $(files_of "$h") "h$h:stage-bench/") &
  done
  wait
}
run_rsync() {
  for h in $(seq 1 "$HOSTS"); do
    (cd "$WORK/files" && rsync -q --whole-file -e "ssh -F $LAB/ssh_config" $(files_of "$h") "h$h:stage-bench/") &
  done
  wait
}
run_dts() {
  (cd "$WORK/files" && "$DTS" submit -q -H "$LAB/hosts.toml" --algo round-robin \
    --items "$WORK/items" --tf {} -- true)
}

declare -A best
for round in $(seq 1 "$ROUNDS"); do
  for method in scp rsync dts; do
    clear_hosts
    sync
    t0=$(now); "run_$method"; t1=$(now)
    rate=$(mbps "$bytes" "$t0" "$t1")
    echo "round $round  $method: $(echo "$t1 - $t0" | bc) s, $rate MB/s"
    if [ -z "${best[$method]:-}" ] || [ "$(echo "$rate > ${best[$method]}" | bc)" = 1 ]; then
      best[$method]=$rate
    fi
  done
done
echo "best: scp ${best[scp]} MB/s, rsync ${best[rsync]} MB/s, dts ${best[dts]} MB/s" \
  "(dts/scp $(echo "scale=2; ${best[dts]} / ${best[scp]}" | bc)," \
  "dts/rsync $(echo "scale=2; ${best[dts]} / ${best[rsync]}" | bc))"

echo "== cache hit: $HITS tasks on h1, 1 slot, each needing the same 64 MB basefile"
awk '/^\[\[host\]\]/{n++} n<2' "$LAB/hosts.toml" > "$WORK/h1.toml"
head -c $((64 * 1048576)) /dev/urandom > "$WORK/files/base.bin"
one() { # one TASKS [--bf FILE]: wall seconds of a serial run of TASKS trivial tasks on h1
  local n=$1; shift
  clear_hosts
  local t0 t1; t0=$(now)
  (cd "$WORK/files" && "$DTS" submit -q -H "$WORK/h1.toml" --slots 1 --array "1-$n" "$@" -- true)
  t1=$(now); echo "$t1 - $t0" | bc
}
plain1=$(one 1); plainN=$(one "$HITS")
base1=$(one 1 --bf base.bin); baseN=$(one "$HITS" --bf base.bin)
per_plain=$(echo "scale=4; ($plainN - $plain1) / ($HITS - 1)" | bc)
per_base=$(echo "scale=4; ($baseN - $base1) / ($HITS - 1)" | bc)
echo "per task: $per_plain s without staging, $per_base s with a cached 64 MB basefile;" \
  "a cache hit costs $(echo "scale=1; ($per_base - $per_plain) * 1000" | bc) ms" \
  "(the first send took $(echo "scale=2; $base1 - $plain1" | bc) s)"
