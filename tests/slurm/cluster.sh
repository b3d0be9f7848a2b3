#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the tests marked `slurm` (make slurm, make slurm-stop).
#
#   tests/slurm/cluster.sh start   install Debian's slurm-wlm, slurmdbd, munge and MariaDB if needed, write
#                                  /etc/slurm/slurm.conf and slurmdbd.conf, start the daemons, wait for the node
#   tests/slurm/cluster.sh stop    stop the daemons this script started (by the pids it recorded)
#
# Accounting is on (slurmdbd over its own MariaDB on 127.0.0.1): submitit learns a job's state from `sacct`
# and, without accounting, warns on every poll and never notices a job Slurm ended without a result.
# Runs as root; a cluster.sh that did not write /etc/slurm/slurm.conf never replaces it.
set -euo pipefail

MARK="# seqlab test cluster, written by tests/slurm/cluster.sh (stop it with: make slurm-stop)"
CONF_DIR=/etc/slurm
STATE=/var/spool/seqlab-slurm    # slurmctld's and slurmd's state, MariaDB's data
RUN=/run/seqlab-slurm            # pid files of the daemons started here
LOGS=/var/log/seqlab-slurm
DB_PORT=6833                     # MariaDB for slurmdbd only, on 127.0.0.1
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server-core mariadb-client-core)
WAIT_S=90

say() { echo "make slurm: $*"; }
fail() { echo "make slurm: $*" >&2; exit 1; }

# MariaDB runs as the slurm user, in a folder of its own; the other daemons run as root.
pid_file() { if [ "$1" = mariadb ]; then echo "$RUN/mariadb/mariadb.pid"; else echo "$RUN/$1.pid"; fi; }
alive() { [ -s "$(pid_file "$1")" ] && kill -0 "$(cat "$(pid_file "$1")")" 2>/dev/null; }

# Poll until the command succeeds (at most WAIT_S seconds); the daemons take a moment to answer.
wait_for() {
    local what=$1 deadline=$((SECONDS + WAIT_S))
    shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || fail "$what did not come up within ${WAIT_S} s (logs in $LOGS)"
        sleep 0.5
    done
}

install_packages() {
    local missing=()
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return
    command -v apt-get >/dev/null || fail "needs apt-get to install ${missing[*]} (Debian's packages)"
    say "installing ${missing[*]}"
    # The daemons are started below with this cluster's settings, not by the packages' scripts.
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [ ! -e $policy ]; then
        printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy && own_policy=1
    fi
    install -d -m 0755 "$LOGS"
    local status=0
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"; } >"$LOGS/apt.log" 2>&1 || status=$?
    [ $own_policy -eq 0 ] || rm -f $policy
    [ $status -eq 0 ] || { tail -5 "$LOGS/apt.log" >&2; fail "apt-get could not install ${missing[*]} (log: $LOGS/apt.log)"; }
}

node_line() {
    # The node as slurmd sees this host (CPUs, sockets, cores, memory), without the uptime it appends.
    slurmd -C | head -1 | sed 's/ *UpTime=.*//'
}

slurm_conf() {
    local host
    host=$(hostname -s)
    cat <<EOF
$MARK
ClusterName=seqlab
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it runs again: 120 by default, 10 here for the tests.
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# No cgroups: processes are tracked through /proc, tasks are not bound to cores.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
MpiDefault=none
# Cores and memory are what jobs ask for: two 1-CPU jobs share a 2-core node.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
# Pending jobs (a requeued one, say) are looked at every few seconds, not every 30 to 60.
SchedulerParameters=sched_interval=2,bf_interval=2
# submitit requeues a job with 'scontrol requeue'; a node that was down comes back by itself.
JobRequeue=1
ReturnToService=2
# At the time limit a job gets SIGTERM, then SIGKILL KillWait seconds later.
KillWait=30
$(node_line) NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

slurmdbd_conf() {
    cat <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(cat "$STATE/db.pass")
StorageLoc=slurm_acct_db
EOF
}

# Write a config file when its text changed; returns 0 when it did (the daemons reading it restart).
write_conf() {
    local path=$1 text=$2 mode=$3
    if [ -e "$path" ] && ! grep -qxF "$MARK" "$path"; then
        fail "$path exists and was not written by tests/slurm/cluster.sh; refusing to replace it"
    fi
    [ -e "$path" ] && [ "$(cat "$path")" = "$text" ] && return 1
    printf '%s\n' "$text" >"$path.new" && chmod "$mode" "$path.new" && mv "$path.new" "$path"
}

start_munge() {
    [ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey --create >/dev/null
    if { munge -n </dev/null | unmunge; } >/dev/null 2>&1; then return; fi  # a munged already answers
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid
    cp /run/munge/munged.pid "$RUN/munged.pid"
    wait_for munged sh -c 'munge -n </dev/null | unmunge'
}

start_mariadb() {
    alive mariadb && return
    local data=$STATE/mariadb
    install -d -o slurm -g slurm "$RUN/mariadb" "$LOGS/mariadb"
    if [ ! -d "$data/mysql" ]; then
        install -d -o slurm -g slurm "$data"
        mariadb-install-db --no-defaults --datadir="$data" --user=slurm --skip-test-db \
            --auth-root-authentication-method=socket >"$LOGS/mariadb/install.log" 2>&1
    fi
    # Its own data, port and socket: a MariaDB this machine runs for anything else is left alone.
    runuser -u slurm -- mariadbd --no-defaults --datadir="$data" --bind-address=127.0.0.1 --skip-name-resolve \
        --port=$DB_PORT \
        --socket="$RUN/mariadb/mariadb.sock" --pid-file="$(pid_file mariadb)" --log-error="$LOGS/mariadb/mariadb.log" \
        --innodb-buffer-pool-size=32M </dev/null >/dev/null 2>&1 &
    wait_for MariaDB mariadb --no-defaults -S "$RUN/mariadb/mariadb.sock" -u root -e "select 1"
    mariadb --no-defaults -S "$RUN/mariadb/mariadb.sock" -u root -e "
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$(cat "$STATE/db.pass")';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

start_daemon() {
    local name=$1
    alive "$name" && return
    "/usr/sbin/$name"  # each daemonizes and writes the pid file named in the config
    wait_for "$name" alive "$name"
}

stop_daemon() {
    local name=$1 pid
    alive "$name" || { rm -f "$(pid_file "$name")"; return 0; }
    pid=$(cat "$(pid_file "$name")")
    kill "$pid"
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$(pid_file "$name")"
}

node_state() { sinfo -h -N -o %t 2>/dev/null | head -1; }

need_root() {
    [ "$(id -u)" = 0 ] || fail "needs root (it installs packages with apt-get and runs slurmctld, slurmd, slurmdbd as root)"
}

start() {
    need_root
    install_packages
    install -d -m 0755 "$CONF_DIR" "$RUN" "$LOGS" "$STATE" "$STATE/slurmctld" "$STATE/slurmd"
    [ -s "$STATE/db.pass" ] || (umask 077 && head -c 18 /dev/urandom | base64 >"$STATE/db.pass")
    local changed=0
    write_conf "$CONF_DIR/slurm.conf" "$(slurm_conf)" 644 && changed=1
    write_conf "$CONF_DIR/slurmdbd.conf" "$(slurmdbd_conf)" 600 && changed=1
    if [ $changed -eq 1 ]; then  # new settings: the Slurm daemons read them at start
        for name in slurmd slurmctld slurmdbd; do stop_daemon $name; done
    fi
    start_munge
    start_mariadb
    start_daemon slurmdbd
    wait_for slurmdbd sacctmgr -n list cluster
    [ -n "$(sacctmgr -n -P list cluster seqlab format=cluster)" ] || sacctmgr -i add cluster seqlab >/dev/null
    start_daemon slurmctld
    wait_for slurmctld scontrol ping
    start_daemon slurmd
    local deadline=$((SECONDS + WAIT_S)) state
    while state=$(node_state); [[ "$state" != idle* && "$state" != mix* && "$state" != alloc* ]]; do
        case "$state" in  # a node left down or drained by an earlier run is put back in service
            down* | drain* | drng*) scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true ;;
        esac
        [ $SECONDS -lt $deadline ] || fail "node $(hostname -s) is '$state' after ${WAIT_S} s (logs in $LOGS)"
        sleep 0.5
    done
    say "cluster up: partition debug, node $(hostname -s) $state ($(node_line | grep -o 'CPUs=[0-9]*'));" \
        "stop it with: make slurm-stop"
}

stop() {
    need_root
    for name in slurmd slurmctld slurmdbd mariadb munged; do stop_daemon $name; done
    echo "make slurm-stop: the test cluster's daemons are stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
