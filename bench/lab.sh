#!/usr/bin/env bash
# Starts N throwaway OpenSSH servers on loopback (127.0.0.2 .. 127.0.0.N+1) with OpenSSH's
# default limits (MaxSessions 10, MaxStartups 10:30:100), for benchmarks. Needs root: it
# creates the user `dtsbench` whose login shell is /bin/sh, so shell start-up files do not
# dominate per-task cost. Writes hosts.toml (dts) and ssh_config (ssh, GNU parallel).
# usage: bench/lab.sh N [LABDIR]      stop: bench/lab.sh stop [LABDIR]
# LAB_NET (default 127.0.0) and LAB_PORT (default 2200) move the lab, so that it can run
# next to another one: host i listens on LAB_NET.(i+1), port LAB_PORT+i.
set -euo pipefail
N=${1:-4}; LAB=${2:-${TMPDIR:-/tmp}/dts-bench-lab}
NET=${LAB_NET:-127.0.0}; PORT0=${LAB_PORT:-2200}
if [ "$N" = stop ]; then
  for p in "$LAB"/sshd_*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; rm -f "$p"; done
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "bench/lab.sh: run as root (it creates the user dtsbench)" >&2; exit 2; }
command -v /usr/sbin/sshd >/dev/null || { apt-get update -qq && apt-get install -y -qq openssh-server >/dev/null; }
mkdir -p "$LAB" /run/sshd
cd "$LAB"
[ -f hostkey ] || ssh-keygen -q -t ed25519 -N '' -f hostkey
[ -f userkey ] || ssh-keygen -q -t ed25519 -N '' -f userkey
id dtsbench >/dev/null 2>&1 || useradd -m -s /bin/sh dtsbench
usermod -p '*' dtsbench
install -d -m 700 -o dtsbench /home/dtsbench/.ssh
install -m 600 -o dtsbench userkey.pub /home/dtsbench/.ssh/authorized_keys
: > known_hosts; : > ssh_config
for i in $(seq 1 "$N"); do
  ip=$NET.$((i+1)); port=$((PORT0+i))
  cat > "sshd_$i.conf" <<CONF
Port $port
ListenAddress $ip
HostKey $LAB/hostkey
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
PidFile $LAB/sshd_$i.pid
CONF
  if ! { [ -f "sshd_$i.pid" ] && kill -0 "$(cat "sshd_$i.pid")" 2>/dev/null; }; then
    /usr/sbin/sshd -f "$LAB/sshd_$i.conf" -E "$LAB/sshd_$i.log"
  fi
  echo "[$ip]:$port $(cut -d' ' -f1-2 hostkey.pub)" >> known_hosts
  printf 'Host h%s\n  HostName %s\n  Port %s\n  User dtsbench\n  IdentityFile %s/userkey\n  UserKnownHostsFile %s/known_hosts\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n' \
    "$i" "$ip" "$port" "$LAB" "$LAB" >> ssh_config
done
{
  echo '[defaults]'
  echo 'user = "dtsbench"'
  echo "identity = \"$LAB/userkey\""
  echo "known_hosts = \"$LAB/known_hosts\""
  echo 'slots = 8'
  for i in $(seq 1 "$N"); do
    printf '\n[[host]]\nname = "h%s"\naddress = "%s.%s"\nport = %s\n' "$i" "$NET" $((i+1)) $((PORT0+i))
  done
} > hosts.toml
# Wait until every server accepts connections.
for i in $(seq 1 "$N"); do
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/$NET.$((i+1))/$((PORT0+i))") 2>/dev/null && break; sleep 0.1; done
done
echo "$LAB"
