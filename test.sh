#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this).
# Installs what the end-to-end tests need when it is missing (OpenSSH server and client,
# pgrep, ip for the network-namespace fault tests, Slurm and munge for tests/slurm.rs, and Chromium for the HTML report's browser
# test), then checks formatting and lints
# and runs every test. The tests start their own sshd servers on loopback addresses; nothing
# in ~/.ssh is touched.
set -euo pipefail
cd "$(dirname "$0")"

need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v pgrep >/dev/null || need+=(procps)
# Warm workers are Perl (perl-base is essential on Debian, so this is for other bases).
command -v perl >/dev/null || need+=(perl-base)
command -v ip >/dev/null || need+=(iproute2)
[ -x /usr/bin/chromium ] || need+=(chromium)
# tests/slurm.rs starts a real Slurm (munged, slurmctld, slurmd) on localhost.
for p in slurmctld slurmd slurm-client munge; do
  dpkg -s $p >/dev/null 2>&1 || need+=($p)
done
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing ${need[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy rustfmt

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
# SSH hosts run warm workers by default; the semantics, SSH and fault suites run again on
# per-task channels, which every host without perl falls back to.
DTS_EXECUTION=per-task cargo test --locked --test semantics --test ssh --test faults
