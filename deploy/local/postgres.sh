#!/usr/bin/env bash
# Starts a throwaway PostgreSQL in a directory of its own and prints its DATABASE_URL.
#   deploy/local/postgres.sh start DIR [PORT]    (DIR is created; PORT defaults to a free one from 25432 up)
#   deploy/local/postgres.sh restart DIR [immediate]  (a fast restart, same port: for failure tests;
#                                                    immediate: no shutdown checkpoint, as after a crash)
#   deploy/local/postgres.sh stop DIR
# It trades durability for speed (fsync off), as a throwaway server may; with
# JURY_POSTGRES_DURABLE=1 it keeps PostgreSQL's defaults, for benchmarks that must pay for them.
# initdb and postgres refuse to run as root, so as root they run as the postgres user.
set -euo pipefail

command=${1:?usage: postgres.sh start|stop DIR [PORT]}
dir=${2:?usage: postgres.sh start|stop DIR [PORT]}
port=${3:-}
bindir=$(pg_config --bindir 2>/dev/null || true)
if [[ ! -x "$bindir/pg_ctl" ]]; then
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
fi
[[ -x "$bindir/pg_ctl" ]] || { echo "postgres.sh: pg_ctl not found; install postgresql" >&2; exit 1; }

as_owner() {
    if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

case "$command" in
start)
    if [[ -f "$dir/data/postmaster.pid" ]] && as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        # Already running (a second demo run): reuse it.
        echo "postgresql://jury@127.0.0.1:$(sed -n 4p "$dir/data/postmaster.pid")/jury"
        exit 0
    fi
    chosen=$port
    # Each directory starts its search at a port of its own (25432 to 25931): a server being
    # restarted keeps its port, which a server starting at the same moment would otherwise take.
    # These lie below Linux's ephemeral range, so no outgoing connection holds one meanwhile.
    [[ -n "$port" ]] || port=$((25432 + $(printf '%s' "$dir" | cksum | cut -d' ' -f1) % 500))
    mkdir -p "$dir"
    [[ $(id -u) == 0 ]] && chown postgres: "$dir"
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
        as_owner "$bindir/initdb" -D "$dir/data" -U jury --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    # A port that looked free can be taken before the server binds it (servers starting side
    # by side): then try the next one, unless the caller asked for this port.
    durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [[ "${JURY_POSTGRES_DURABLE:-}" == 1 ]] && durability=""
    for attempt in 1 2 3 4 5 6 7 8; do
        if [[ -z "$chosen" ]]; then
            while port_taken "$port"; do port=$((port + 1)); done
        fi
        if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 $durability" \
            start >/dev/null; then
            break
        fi
        if [[ -n "$chosen" || $attempt == 8 ]] || ! grep -q "Address already in use" "$dir/server.log"; then
            tail -20 "$dir/server.log" >&2
            exit 1
        fi
        port=$((port + 1 + RANDOM % 16))
    done
    as_owner "$bindir/psql" -h "$dir" -p "$port" -U jury -d postgres -qAt \
        -c "SELECT 1 FROM pg_database WHERE datname = 'jury'" | grep -q 1 \
        || as_owner "$bindir/createdb" -h "$dir" -p "$port" -U jury jury
    echo "postgresql://jury@127.0.0.1:$port/jury"
    ;;
restart)
    mode=fast
    [[ "$port" == immediate ]] && mode=immediate
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m "$mode" -w -t 60 restart >/dev/null
    ;;
stop)
    [[ -f "$dir/data/postmaster.pid" ]] && as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    ;;
*)
    echo "usage: postgres.sh start|restart|stop DIR [PORT]" >&2; exit 2 ;;
esac
