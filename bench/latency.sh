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
# sample CMD...: microseconds from starting CMD to the first task's `date +%s%N`.
sample() {
  local t0 started
  t0=$(date +%s%N)
  started=$("$@" | head -1)
  echo $(( (started - t0) / 1000 ))
}
# report LABEL SAMPLES...: the median, with the spread.
report() {
  local label=$1; shift
  printf '%s\n' "$@" | sort -n | awk -v label="$label" -v runs="$#" '{a[NR]=$1}
    END {printf "%-34s median %6.1f ms over %s runs (min %.1f, max %.1f)\n", label,
      a[int((NR+1)/2)]/1000, runs, a[1]/1000, a[NR]/1000}'
}
# first_start LABEL CMD...: median time from starting CMD to the first task's start.
first_start() {
  local label=$1; shift
  local samples=()
  for _ in $(seq "$RUNS"); do samples+=("$(sample "$@")"); done
  report "$label" "${samples[@]}"
}
# Warm workers (the default) against per-task channels, interleaved so that both see the
# same machine: the warm goal is a first task no later than per-task channels start it.
submit=("$DTS" submit -q -H "$LAB/hosts.toml" --output raw -- 'date +%s%N')
warm=(); per_task=()
for _ in $(seq "$RUNS"); do
  warm+=("$(sample "${submit[@]}")")
  per_task+=("$(DTS_EXECUTION=per-task sample "${submit[@]}")")
done
report "dts submit (4 hosts) to first task" "${warm[@]}"
report "  on per-task channels" "${per_task[@]}"
first_start "ssh host cmd" ssh -F "$LAB/ssh_config" h1 'date +%s%N'
first_start "GNU parallel -S (4 hosts)" \
  parallel --ssh "ssh -F $LAB/ssh_config" -S 1/h1,1/h2,1/h3,1/h4 ::: 'date +%s%N'
hyperfine -N --warmup 5 --runs 100 --export-json /tmp/dts-version.json "$DTS --version" >/dev/null
echo "dts --version: mean $(python3 -c "import json; r=json.load(open('/tmp/dts-version.json'))['results'][0]; print(f\"{r['mean']*1000:.2f} ms ± {r['stddev']*1000:.2f}\")")"
