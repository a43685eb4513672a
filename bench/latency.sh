#!/usr/bin/env bash
# Latency: from `dts submit` to the first task's start on a remote host (connect, handshake,
# probe, dispatch; 4 loopback hosts), and `dts --version` start-up. Medians.
# usage: bench/latency.sh [RUNS=20]      (needs root)
source "$(dirname "$0")/common.sh"
RUNS=${1:-20}
build
lab 4
trap lab_stop EXIT
samples=()
for _ in $(seq "$RUNS"); do
  t0=$(date +%s%N)
  started=$($DTS submit -q -H "$LAB/hosts.toml" --output raw -- 'date +%s%N')
  samples+=("$(( (started - t0) / 1000 ))")
done
median=$(printf '%s\n' "${samples[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "submit to first task start: median $(echo "scale=1; $median / 1000" | bc) ms over $RUNS runs (4 hosts)"
hyperfine -N --warmup 5 --runs 100 --export-json /tmp/dts-version.json "$DTS --version" >/dev/null
echo "dts --version: mean $(python3 -c "import json; r=json.load(open('/tmp/dts-version.json'))['results'][0]; print(f\"{r['mean']*1000:.2f} ms ± {r['stddev']*1000:.2f}\")")"
