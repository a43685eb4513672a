#!/bin/bash
# A throw-away Slurm cluster for the tests, all state under $1 (config, munge socket, spool,
# logs, pid files), on ports from $2, so it cannot clash with a system Slurm or another run.
#   slurm-up.sh DIR BASEPORT NODES CPUS
# Clients find it through SLURM_CONF=DIR/slurm.conf. Stop it with the pids in DIR/*.pid.
set -euo pipefail
dir=$1; base=$2; nodes=$3; cpus=$4
mkdir -p "$dir"/{munge,ctld,log}
chmod 0755 "$dir" "$dir/munge"
chown munge:munge "$dir/munge"
chown slurm:slurm "$dir/ctld" "$dir/log"
key=$dir/munge/munge.key
[ -s "$key" ] || { dd if=/dev/urandom of="$key" bs=1024 count=1 2>/dev/null; chown munge:munge "$key"; chmod 0400 "$key"; }
sock=$dir/munge/munge.socket
runuser -u munge -- /usr/sbin/munged --key-file="$key" --socket="$sock" \
  --pid-file="$dir/munge/munged.pid" --seed-file="$dir/munge/seed" --log-file="$dir/munge/munged.log"
host=$(hostname -s)
conf=$dir/slurm.conf
cat > "$conf" <<CONF
ClusterName=dtstest
SlurmctldHost=$host
SlurmctldPort=$base
SlurmdPort=$((base+1))
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/slurmd-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=2
KillWait=2
CONF
for i in $(seq 1 "$nodes"); do
  echo "NodeName=n$i NodeHostname=$host NodeAddr=127.0.0.1 Port=$((base+1+i)) CPUs=$cpus RealMemory=1000 State=UNKNOWN" >> "$conf"
  mkdir -p "$dir/slurmd-n$i"
done
echo "PartitionName=debug Nodes=n[1-$nodes] Default=YES MaxTime=INFINITE State=UP" >> "$conf"
export SLURM_CONF=$conf
/usr/sbin/slurmctld -f "$conf"
for i in $(seq 1 "$nodes"); do /usr/sbin/slurmd -f "$conf" -N "n$i"; done
for i in $(seq 300); do
  [ "$(sinfo -h -N -t idle -o %N 2>/dev/null | wc -l)" = "$nodes" ] && exit 0; sleep 0.1
done
echo "slurm-up: nodes not idle after 30 s" >&2; sinfo -N >&2 || true; exit 1
