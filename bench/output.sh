#!/usr/bin/env bash
# Output: 16 tasks each writing 100 MB to stdout over 4 loopback hosts, into the run store,
# against 16 concurrent `ssh host cat`-style commands writing the same data to files.
# usage: bench/output.sh [MB_PER_TASK=100]      (needs root)
source "$(dirname "$0")/common.sh"
MB=${1:-100}
BYTES=$((MB * 1000 * 1000)); TOTAL=$((16 * BYTES))
build
lab 4
trap 'lab_stop; rm -rf /tmp/dts-bench-out' EXIT
t0=$(now)
$DTS submit -q -H "$LAB/hosts.toml" --output none --array 1-16 -- ": {}; head -c $BYTES /dev/zero"
t1=$(now)
run=$(ls -t "$DTS_STATE_DIR" | head -1)
stored=$(cat "$DTS_STATE_DIR/$run"/out/*.stdout | wc -c)
[ "$stored" -eq "$TOTAL" ] || { echo "store holds $stored bytes, expected $TOTAL" >&2; exit 1; }
dts_mbs=$(echo "scale=1; $TOTAL / 1000000 / ($t1 - $t0)" | bc)
mkdir -p /tmp/dts-bench-out
t0=$(now)
for i in $(seq 1 16); do
  h=$(( (i - 1) % 4 + 1 ))
  ssh -F "$LAB/ssh_config" "h$h" "head -c $BYTES /dev/zero" > "/tmp/dts-bench-out/$i" &
done
wait
t1=$(now)
ssh_mbs=$(echo "scale=1; $TOTAL / 1000000 / ($t1 - $t0)" | bc)
echo "16 x $MB MB of task output: dts into the run store $dts_mbs MB/s, 16 x ssh into files $ssh_mbs MB/s ($(echo "scale=2; $dts_mbs / $ssh_mbs" | bc)x)"
