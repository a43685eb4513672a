#!/usr/bin/env bash
# Latency: from `dts submit` to the first task's start on a remote host (connect, handshake,
# probe, dispatch; 4 loopback hosts) next to a plain `ssh host cmd` and GNU parallel -S, and
# `dts --version` start-up. Medians.
# usage: bench/latency.sh [RUNS=20]      (needs root)
source "$(dirname "$0")/common.sh"
RUNS=${1:-20}
build
lab 4
trap lab_stop EXIT
# first_start LABEL CMD...: median time from starting CMD to the first task's `date +%s%N`.
first_start() {
  local label=$1; shift
  local samples=()
  for _ in $(seq "$RUNS"); do
    local t0 started
    t0=$(date +%s%N)
    started=$("$@" | head -1)
    samples+=("$(( (started - t0) / 1000 ))")
  done
  local median
  median=$(printf '%s\n' "${samples[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%-34s median %6.1f ms over %s runs\n' "$label" "$(echo "scale=1; $median / 1000" | bc)" "$RUNS"
}
first_start "dts submit (4 hosts) to first task" \
  "$DTS" submit -q -H "$LAB/hosts.toml" --output raw -- 'date +%s%N'
first_start "ssh host cmd" ssh -F "$LAB/ssh_config" h1 'date +%s%N'
first_start "GNU parallel -S (4 hosts)" \
  parallel --ssh "ssh -F $LAB/ssh_config" -S 1/h1,1/h2,1/h3,1/h4 ::: 'date +%s%N'
hyperfine -N --warmup 5 --runs 100 --export-json /tmp/dts-version.json "$DTS --version" >/dev/null
echo "dts --version: mean $(python3 -c "import json; r=json.load(open('/tmp/dts-version.json'))['results'][0]; print(f\"{r['mean']*1000:.2f} ms ± {r['stddev']*1000:.2f}\")")"
