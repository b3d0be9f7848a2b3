#!/usr/bin/env bash
# A PostgreSQL server on 127.0.0.1 for the tests marked `postgres` (make postgres, make postgres-stop).
#
#   tests/postgres/server.sh start   install Debian's postgresql if needed, create a cluster of its own (port
#                                    5433, trust on loopback only), start it, create the role and database
#   tests/postgres/server.sh stop    stop that cluster
#
# The tests reach it at postgresql://seqlab@127.0.0.1:5433/optuna (SEQLAB_POSTGRES_URL overrides it). The
# cluster lives in its own folder, apart from any cluster Debian's package made; runs as root.
set -euo pipefail

PORT=${SEQLAB_POSTGRES_PORT:-5433}
DATA=/var/lib/postgresql/seqlab-tests
LOG=/var/log/postgresql/seqlab-tests.log
WAIT_S=60

say() { echo "make postgres: $*"; }
fail() { echo "make postgres: $*" >&2; exit 1; }
as_postgres() { su postgres -s /bin/sh -c "$*"; }

install_server() {
    dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q "ok installed" && return
    command -v apt-get >/dev/null || fail "needs apt-get to install Debian's postgresql"
    say "installing postgresql"
    # The cluster below is started with these settings, not by the package's scripts.
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy && own_policy=1; fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    [ $own_policy = 1 ] && rm -f $policy
    return 0
}

bin_dir() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1; }
running() { as_postgres "$(bin_dir)/pg_ctl -D $DATA status" >/dev/null 2>&1; }

start() {
    [ "$(id -u)" = 0 ] || fail "run as root (it installs and starts a server)"
    install_server
    local bin
    bin=$(bin_dir)
    if [ ! -s "$DATA/PG_VERSION" ]; then
        say "creating a cluster in $DATA"
        mkdir -p "$DATA" "$(dirname $LOG)" && chown postgres:postgres "$DATA" "$(dirname $LOG)"
        as_postgres "$bin/initdb -D $DATA -U postgres --auth=trust" >/dev/null
    fi
    if ! running; then
        # Loopback only; sockets in /tmp so that no folder of Debian's cluster is needed.
        as_postgres "$bin/pg_ctl -D $DATA -l $LOG -w -t $WAIT_S -o '-c listen_addresses=127.0.0.1 -p $PORT -k /tmp -c max_connections=200' start" >/dev/null \
            || fail "the server did not start (log: $LOG)"
    fi
    psql_admin() { as_postgres "$bin/psql -h 127.0.0.1 -p $PORT -U postgres -tAc \"$1\""; }
    [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname='seqlab'")" = 1 ] || psql_admin "CREATE ROLE seqlab LOGIN CREATEDB" >/dev/null
    [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname='optuna'")" = 1 ] || psql_admin "CREATE DATABASE optuna OWNER seqlab" >/dev/null
    say "up at postgresql://seqlab@127.0.0.1:$PORT/optuna"
}

stop() {
    if [ -s "$DATA/PG_VERSION" ] && running; then
        as_postgres "$(bin_dir)/pg_ctl -D $DATA -m fast -w stop" >/dev/null && say "stopped"
    else
        say "not running"
    fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) fail "usage: $0 start|stop" ;;
esac
