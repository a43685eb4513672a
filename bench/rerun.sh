#!/usr/bin/env bash
# "Run it again, faster" (issue 17 item 3): a skewed sweep whose long items are listed last
# (20 tasks of 1 s, then 4 of 3 s), on 4 loopback hosts with 2 slots each, run twice under
# one job name with --order longest-first. The first run has no history and starts the tasks
# as listed; the second starts the recorded long ones first. Each job has a name of its own.
# usage: bench/rerun.sh [JOBS=3]      (needs root)
source "$(dirname "$0")/common.sh"
JOBS=${1:-3}
build
lab 4
trap lab_stop EXIT
# makespan NAME: one run of the sweep as job NAME, and its makespan in seconds.
makespan() {
  "$DTS" submit -q -H "$LAB/hosts.toml" --slots 2 --order longest-first --json --name "$1" \
    --array 1-24 -- 'sleep $(( DTS_TASK_ID > 20 ? 3 : 1 ))' |
    python3 -c 'import json, sys; print("%.2f" % json.load(sys.stdin)["stats"]["makespan_s"])'
}
for job in $(seq "$JOBS"); do
  name="skewed-$$-$job"
  first=$(makespan "$name")
  second=$(makespan "$name")
  echo "job $name: first run $first s, second run $second s ($(echo "scale=1; 100 * ($first - $second) / $first" | bc) % sooner)"
done
