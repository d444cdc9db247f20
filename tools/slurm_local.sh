#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for bench.suite --executor slurm and its tests
# (docs/cluster.md, "A SLURM cluster on this machine").
#
#   tools/slurm_local.sh start    install slurm + munge when missing (apt-get, needs root), write the
#                                 configuration into $SLURM_LOCAL_DIR, start munged, slurmctld and
#                                 slurmd, wait until the node is idle; a second start is a no-op
#   tools/slurm_local.sh stop     cancel this cluster's jobs, stop exactly the daemons start started
#   tools/slurm_local.sh status   the daemons and sinfo; exit 0 when the node is up
#
# Then: export SLURM_CONF=$SLURM_LOCAL_DIR/slurm.conf (start prints the line) for sinfo, sbatch,
# squeue, scancel, scontrol and bench.suite --executor slurm.
#
# One node with this machine's CPUs and memory (slurmd -C), one partition (local), no CPU binding
# (TaskPlugin=task/none: a job's threads come from SLURM_CPUS_PER_TASK, see bench/engine/threads.py),
# ProctrackType=proctrack/linuxproc (no cgroups needed), AuthType=auth/munge with a munged of its
# own (own socket and key). No accounting (no slurmdbd, no database): sacct does not work, and
# bench.jobs.cluster reads job states from squeue instead.
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/fus2bench-slurm}
CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-6917}
SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-6918}
PARTITION=local
CONF=$DIR/slurm.conf
export SLURM_CONF=$CONF

say() { echo "slurm_local: $*"; }
die() { echo "slurm_local: $*" >&2; exit 1; }

# the pid recorded in $1 when that process is alive and is the program $2 (never a reused pid)
live_pid() {
  local file=$1 prog=$2 pid
  [ -s "$file" ] || return 1
  pid=$(tr -dc '0-9' < "$file")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "$prog" || return 1
  echo "$pid"
}

node_up() {
  local state
  state=$(sinfo -h -N -o '%T' 2>/dev/null | head -1) || return 1
  case "$state" in idle|mixed|allocated|completing) return 0 ;; *) return 1 ;; esac
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
      && command -v munged >/dev/null; then
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "slurm and munge are not installed and this is not root: install slurmctld slurmd slurm-client munge"
  say "installing slurmctld slurmd slurm-client munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

write_config() {
  mkdir -p "$DIR"/{state,spool,munge,log}
  chmod 700 "$DIR/munge"
  if [ ! -s "$DIR/munge/munge.key" ]; then
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile="$DIR/munge/munge.key" --force
    else
      dd if=/dev/urandom bs=1 count=1024 of="$DIR/munge/munge.key" 2>/dev/null
    fi
    chmod 600 "$DIR/munge/munge.key"
  fi
  local node host
  node=$(slurmd -C | head -1)  # NodeName=<host> CPUs=... RealMemory=...
  host=$(echo "$node" | sed -n 's/^NodeName=\([^ ]*\).*/\1/p')
  # leave 1 GiB of the memory to the system and the daemons
  node=$(echo "$node" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^RealMemory=/) { split($i, a, "="); $i = "RealMemory=" (a[2] > 2048 ? a[2] - 1024 : a[2]) } print}')
  cat > "$CONF.tmp" <<EOF
# written by tools/slurm_local.sh (fus2bench): one node, one partition, no accounting
ClusterName=fus2bench
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# short waits: tests pre-empt, requeue and cancel jobs
KillWait=2
MinJobAge=600
SchedulerParameters=sched_interval=2
MessageTimeout=20
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
}

start() {
  if live_pid "$DIR/slurmctld.pid" slurmctld >/dev/null && live_pid "$DIR/slurmd.pid" slurmd >/dev/null \
      && node_up; then
    say "already running ($DIR)"
    echo "export SLURM_CONF=$CONF"
    return 0
  fi
  install_packages
  write_config
  if ! live_pid "$DIR/munged.pid" munged >/dev/null; then
    munged --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
      --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" \
      --seed-file="$DIR/munge/munged.seed" --force
  fi
  if ! live_pid "$DIR/slurmctld.pid" slurmctld >/dev/null; then
    slurmctld -f "$CONF"  # daemonizes; writes its pid file
  fi
  if ! live_pid "$DIR/slurmd.pid" slurmd >/dev/null; then
    slurmd -f "$CONF"
  fi
  local t
  for t in $(seq 1 60); do
    if node_up; then
      say "node up after ${t} s: $(sinfo -h -N -o '%N %T, %c CPUs, %m MB')"
      echo "export SLURM_CONF=$CONF"
      return 0
    fi
    # a node left down by an earlier run comes back here
    scontrol update nodename="$(sinfo -h -N -o '%N' 2>/dev/null | head -1)" state=resume >/dev/null 2>&1 || true
    sleep 1
  done
  tail -5 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
  die "the node did not become idle within 60 s (logs in $DIR/log)"
}

stop_one() {  # pid file, program
  local pid t
  pid=$(live_pid "$1" "$2") || return 0
  kill "$pid"
  for t in $(seq 1 50); do
    [ -d "/proc/$pid" ] || { say "stopped $2 ($pid)"; rm -f "$1"; return 0; }
    sleep 0.2
  done
  kill -9 "$pid" 2>/dev/null || true
  say "killed $2 ($pid)"
  rm -f "$1"
}

stop() {
  if live_pid "$DIR/slurmctld.pid" slurmctld >/dev/null; then
    scancel --full --partition="$PARTITION" >/dev/null 2>&1 || true
    for _ in $(seq 1 20); do
      [ -z "$(squeue -h 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  stop_one "$DIR/slurmd.pid" slurmd
  stop_one "$DIR/slurmctld.pid" slurmctld
  stop_one "$DIR/munged.pid" munged
}

status() {
  local ok=0 prog pid
  for prog in munged slurmctld slurmd; do
    if pid=$(live_pid "$DIR/$prog.pid" "$prog"); then
      say "$prog running ($pid)"
    else
      say "$prog not running"; ok=1
    fi
  done
  if [ $ok = 0 ] && node_up; then
    sinfo
    echo "export SLURM_CONF=$CONF"
    return 0
  fi
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
