# shellcheck shell=bash
# Throw-away PostgreSQL servers for the tests: initdb in a temp dir as the
# postgres user (PostgreSQL refuses to run as root), a free loopback port,
# started with pg_ctl and stopped by the postmaster's PID. Debian's
# postgresql-15 (deploy/install-deps.sh installs it).
#   pg_find_bin                      -> PG_BIN, or returns 1 (then skip)
#   pg_start NAME [extra postgresql.conf lines...]
#                                    -> PG_DIR_<NAME>, PG_PORT_<NAME>
#   pg_replica NAME PRIMARY          -> a streaming standby of PRIMARY
#   pg_pid NAME, pg_kill NAME, pg_stop_all

PG_ROOT=""
PG_NAMES=""

pg_find_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            PG_BIN=$d
            return 0
        fi
    done
    return 1
}

# Runs a command as postgres when we are root, else as ourselves.
pg_as() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pg_root() {
    if [ -z "$PG_ROOT" ]; then
        PG_ROOT=$(mktemp -d /tmp/modeld-pg.XXXXXX)
        chmod 0755 "$PG_ROOT"
        [ "$(id -u)" -eq 0 ] && chown postgres "$PG_ROOT"
    fi
}

# Waits (bounded) until the server on port answers.
pg_wait() {
    local port=$1 i
    for i in $(seq 1 300); do
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 1; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

pg_conf() {
    local dir=$1 port=$2
    shift 2
    {
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $port"
        echo "unix_socket_directories = '$dir'"
        echo "fsync = off"
        echo "max_connections = 60"
        echo "shared_buffers = 16MB"
        echo "wal_level = replica"
        echo "max_wal_senders = 4"
        echo "logging_collector = off"
        local line
        for line in "$@"; do echo "$line"; done
    } | pg_as tee -a "$dir/postgresql.conf" >/dev/null
}

pg_launch() {
    local name=$1 dir=$2 port=$3
    pg_as "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 30 start \
        >/dev/null || { cat "$dir/server.log" >&2; return 1; }
    pg_wait "$port" || return 1
    eval "PG_DIR_$name=\$dir; PG_PORT_$name=\$port"
    PG_NAMES="$PG_NAMES $name"
}

pg_start() {
    local name=$1 dir port
    shift
    pg_root
    dir=$PG_ROOT/$name
    port=$(pg_free_port)
    pg_as "$PG_BIN/initdb" -D "$dir" -U postgres -A trust --no-sync \
        >"$PG_ROOT/$name.initdb.log" 2>&1 ||
        { cat "$PG_ROOT/$name.initdb.log" >&2; return 1; }
    echo "host replication all 127.0.0.1/32 trust" |
        pg_as tee -a "$dir/pg_hba.conf" >/dev/null
    pg_conf "$dir" "$port" "$@"
    pg_launch "$name" "$dir" "$port"
}

# A streaming replica of primary (pg_basebackup -R writes standby.signal
# and primary_conninfo).
pg_replica() {
    local name=$1 primary=$2 dir port pport
    pg_root
    dir=$PG_ROOT/$name
    pport=$(eval echo "\$PG_PORT_$primary")
    port=$(pg_free_port)
    pg_as "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$pport" -U postgres \
        -D "$dir" -R -X stream -c fast --no-sync \
        >"$PG_ROOT/$name.basebackup.log" 2>&1 ||
        { cat "$PG_ROOT/$name.basebackup.log" >&2; return 1; }
    pg_as sed -i "s/^port = .*/port = $port/; s|^unix_socket_directories = .*|unix_socket_directories = '$dir'|" \
        "$dir/postgresql.conf"
    echo "primary_conninfo = 'host=127.0.0.1 port=$pport user=postgres application_name=$name'" |
        pg_as tee -a "$dir/postgresql.conf" >/dev/null
    pg_launch "$name" "$dir" "$port"
}

pg_pid() {
    local dir
    dir=$(eval echo "\$PG_DIR_$1")
    head -n 1 "$dir/postmaster.pid" 2>/dev/null
}

# SIGKILL to the postmaster: a crash, not a shutdown. Its backends exit
# when they notice the postmaster is gone.
pg_kill() {
    local pid
    pid=$(pg_pid "$1")
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    local i
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
}

pg_stop_all() {
    local name pid dir
    for name in $PG_NAMES; do
        pid=$(pg_pid "$name")
        dir=$(eval echo "\$PG_DIR_$name")
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            # Immediate: a test server has nothing to keep.
            kill -QUIT "$pid" 2>/dev/null
            for _ in $(seq 1 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.05
            done
            kill -KILL "$pid" 2>/dev/null
        fi
        # Backends of a SIGKILLed postmaster: found by the data dir's
        # lock file's PID only; nothing else of ours to end.
        : "$dir"
    done
    PG_NAMES=""
    [ -n "$PG_ROOT" ] && rm -rf "$PG_ROOT"
    PG_ROOT=""
}

# pg_database NAME DB: a fresh database DB on server NAME (cheaper than a
# server of its own); 0 when made.
pg_database() {
    psql -X -q "$(pg_url "$1")" -c "CREATE DATABASE $2" >/dev/null 2>&1
}

pg_url() {
    local port
    port=$(eval echo "\$PG_PORT_$1")
    echo "postgresql://postgres@127.0.0.1:$port/${2:-postgres}"
}
