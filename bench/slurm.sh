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
run() { /usr/bin/time -f "$1: %e s wall for $n tasks" "$@" ; }
HOME=$work "$OLDPWD/$dts" submit -q --array 1-$n -- true 2>&1 | grep -E "tasks/s" || true
rm hosts.toml
HOME=$work "$OLDPWD/$dts" submit -q --slots 6 --array 1-$n -- true 2>&1 | grep -E "tasks/s" || true
