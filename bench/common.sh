# Shared by the bench scripts: build, lab, timing helpers. Sourced, not run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DTS=$ROOT/target/release/dts
CEILING=$ROOT/target/release/examples/ceiling
export DTS_STATE_DIR=${DTS_STATE_DIR:-$(mktemp -d /tmp/dts-bench-state.XXXX)}

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need parallel parallel
need bc bc
need hyperfine hyperfine
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

build() { cargo build --release -q && cargo build --release -q --example ceiling; }

# lab N: starts N loopback sshd hosts (bench/lab.sh) and sets LAB and HOSTS_CSV.
lab() {
  # Labs share addresses and ports: only one runs at a time.
  for old in /tmp/dts-bench-lab*; do [ -d "$old" ] && bench/lab.sh stop "$old" >/dev/null 2>&1; done
  LAB=$(bench/lab.sh "$1" "/tmp/dts-bench-lab-$1")
  ADDRS=(); for i in $(seq 1 "$1"); do ADDRS+=("${LAB_NET:-127.0.0}.$((i+1)):$((${LAB_PORT:-2200}+i))"); done
}
lab_stop() { bench/lab.sh stop "$LAB" >/dev/null 2>&1 || true; }

now() { date +%s.%N; }
# rate TASKS START END
rate() { echo "scale=1; $1 / ($3 - $2)" | bc; }
ratio() { echo "scale=1; $1 / $2" | bc; }
machine() {
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); $(/usr/sbin/sshd -V 2>&1 | head -1); $(parallel --version | head -1)"
}
