#!/bin/bash
# Steps per second through the Slurm transport against the local transport on the same
# machine: N tasks of `true` on a throw-away 3-node Slurm (tests/common/slurm-up.sh).
#   bench/slurm.sh [N]   (root; Slurm packages installed, as test.sh installs them)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-300}
dts=${DTS:-target/release/dts}
[ -x "$dts" ] || cargo build --release --locked -q
dir=$(mktemp -d /tmp/dts-bench-slurm.XXXX)
tests/common/slurm-up.sh "$dir" 27500 3 2
export SLURM_CONF=$dir/slurm.conf
stop() { for f in "$dir"/*.pid "$dir"/munge/munged.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done; }
trap stop EXIT
work=$(mktemp -d); cd "$work"
printf '[slurm]\nnodes = 3\ncpus_per_node = 2\n' > hosts.toml
root=$OLDPWD
echo "slurm transport, warm worker steps (3 nodes x 2 slots):"
HOME=$work "$root/$dts" submit --array 1-$n -- true 2>&1 | grep -E "tasks/s"
printf 'execution = "per-task"\n' >> hosts.toml
echo "slurm transport, one srun step per task (3 nodes x 2 slots):"
HOME=$work "$root/$dts" submit --array 1-$n -- true 2>&1 | grep -E "tasks/s"
echo "bare srun steps, one after another:"
t0=$(date +%s.%N); job=$(sbatch --parsable -N1 -o /dev/null --wrap 'exec sleep infinity')
while [ "$(squeue -h -j "$job" -o %T)" != RUNNING ]; do sleep 0.1; done
t1=$(date +%s.%N)
for i in $(seq 50); do srun --jobid "$job" -N1 -n1 --overlap --quiet true; done
t2=$(date +%s.%N); scancel "$job"
echo "  allocation granted in $(echo "$t1-$t0" | bc) s; 50 steps: $(echo "50/($t2-$t1)" | bc -l | cut -c1-5) steps/s"
rm hosts.toml
echo "local transport, 6 slots, same machine:"
HOME=$work "$root/$dts" submit --slots 6 --array 1-$n -- true 2>&1 | grep -E "tasks/s"
