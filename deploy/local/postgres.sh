#!/usr/bin/env bash
# Local PostgreSQL instance for development and tests (our own cluster, not
# the Debian "main" cluster managed by pg_ctlcluster).
#
# Usage: deploy/local/postgres.sh start|stop|status|url [DBNAME]
#
#   start   install PostgreSQL if missing (apt, needs root), initdb once, start
#           the server, create role mpp/mpp and the mpp_* databases (idempotent).
#           Prints the URL of mpp_test. If already running, just prints the URL.
#   stop    fast shutdown (data and port are kept for the next start).
#   status  "running"/"not running"; exit 0 / 3.
#   url DB  prints postgresql://mpp:mpp@127.0.0.1:PORT/DB (default DB mpp_test).
#
# Environment:
#   POSTGRES_URL   use an external server: start/stop do nothing, url DB prints
#                  this URL with its database name replaced by DB.
#   PG_STATE_DIR   state dir (default <repo>/.local/postgres).
#   PG_PORT        port (default: previous port if free, else a free one).
#
# State dir layout: data/ (or a fallback, see below), log, port, datadir.
# As root the server runs as the "postgres" system user. If that user cannot
# reach the state dir (a parent directory is not traversable), the cluster
# lives in /var/tmp/mpp-postgres-<hash of the state dir path>/ instead; the
# data dir's path is always recorded in <state dir>/datadir and <state dir>/log
# is then a symlink to the real log.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

PG_USER_ROLE="mpp"
PG_USER_PASSWORD="mpp"
DATABASES=(mpp_identity mpp_licensing mpp_queue mpp_notification mpp_reporting mpp_test)
DEFAULT_DB="mpp_test"
PG_SYSTEM_USER="postgres"

log() { printf '[postgres] %s\n' "$*"; }
err() { printf '[postgres] ERROR: %s\n' "$*" >&2; }
die() { err "$*"; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

is_root() { [[ "$(id -u)" == 0 ]]; }

# ------------------------------------------------------------ external server --

# external_url DB: $POSTGRES_URL with the database (path) replaced by DB.
external_url() {
    python3 - "$POSTGRES_URL" "$1" <<'PY'
import sys
from urllib.parse import urlsplit, urlunsplit, quote
url, db = sys.argv[1], sys.argv[2]
p = urlsplit(url)
print(urlunsplit((p.scheme, p.netloc, "/" + quote(db), p.query, p.fragment)))
PY
}

# ------------------------------------------------------------------- paths --

init_state_paths() {
    local dir="${PG_STATE_DIR:-$REPO_ROOT/.local/postgres}"
    mkdir -p "$dir"
    STATE_DIR="$(cd "$dir" && pwd)"
    PORT_FILE="$STATE_DIR/port"
    DATADIR_FILE="$STATE_DIR/datadir"
    # RUN_DIR holds data/, log and run/ (unix socket); normally the state dir.
    RUN_DIR="$STATE_DIR"
    if [[ -s "$DATADIR_FILE" ]]; then
        local recorded
        recorded="$(cat "$DATADIR_FILE")"
        RUN_DIR="$(dirname "$recorded")"
    fi
    set_run_paths
}

set_run_paths() {
    DATA_DIR="$RUN_DIR/data"
    LOG_FILE="$RUN_DIR/log"
    SOCKET_DIR="$RUN_DIR/run"
}

fallback_run_dir() {
    local h
    h="$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-12)"
    printf '/var/tmp/mpp-postgres-%s\n' "$h"
}

# ---------------------------------------------------------------- binaries --

PG_BIN=""

# find_pg_bin: sets PG_BIN to the bin dir of the installed PostgreSQL (the
# version matching an existing data dir if there is one, else the newest).
find_pg_bin() {
    PG_BIN=""
    local want="" d best="" best_ver=0 ver
    if [[ -f "$DATA_DIR/PG_VERSION" ]]; then
        want="$(cat "$DATA_DIR/PG_VERSION")"
    fi
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] || continue
        ver="$(basename "$(dirname "$d")")"
        if [[ -n "$want" && "$ver" == "$want" ]]; then
            PG_BIN="$d"
            return 0
        fi
        if [[ "$ver" =~ ^[0-9]+$ ]] && (( ver > best_ver )); then
            best="$d"
            best_ver="$ver"
        fi
    done
    if [[ -n "$want" && -n "$best" ]]; then
        die "data dir $DATA_DIR was created by PostgreSQL $want, but only $best_ver is installed"
    fi
    PG_BIN="$best"
    [[ -n "$PG_BIN" ]]
}

install_postgres() {
    local -a sudo=()
    if ! is_root; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            die "PostgreSQL is not installed and installing it needs root or sudo: run as root, or: sudo apt-get install -y postgresql"
        fi
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "PostgreSQL is not installed and apt-get is not available; install PostgreSQL (initdb, pg_ctl) under /usr/lib/postgresql/<version>/bin"
    log "PostgreSQL not found; installing it with apt-get (one time)..."
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    find_pg_bin || die "apt-get finished but no initdb under /usr/lib/postgresql/*/bin"
    log "installed $("$PG_BIN/postgres" --version)"
}

# ------------------------------------------------------- running as postgres --

# as_pg CMD...: run CMD as the postgres system user when we are root.
as_pg() {
    if is_root; then
        (cd / && runuser -u "$PG_SYSTEM_USER" -- "$@")
    else
        "$@"
    fi
}

# prepare_run_dir: make sure the server user can use RUN_DIR; switch to the
# /var/tmp fallback when it cannot reach the state dir.
prepare_run_dir() {
    if ! is_root; then
        mkdir -p "$DATA_DIR" "$SOCKET_DIR"
        chmod 700 "$DATA_DIR"
        printf '%s\n' "$DATA_DIR" >"$DATADIR_FILE"
        return 0
    fi
    id "$PG_SYSTEM_USER" >/dev/null 2>&1 ||
        die "system user '$PG_SYSTEM_USER' does not exist (it is created by the Debian postgresql package)"
    if [[ "$RUN_DIR" == "$STATE_DIR" ]]; then
        install -d -o "$PG_SYSTEM_USER" -g "$PG_SYSTEM_USER" -m 700 "$DATA_DIR"
        if ! as_pg test -w "$DATA_DIR" -a -x "$DATA_DIR"; then
            RUN_DIR="$(fallback_run_dir)"
            log "user '$PG_SYSTEM_USER' cannot reach $STATE_DIR (a parent directory is not traversable); using $RUN_DIR instead"
            rmdir "$DATA_DIR" 2>/dev/null || true
            set_run_paths
        fi
    fi
    if [[ "$RUN_DIR" != "$STATE_DIR" ]]; then
        install -d -o "$PG_SYSTEM_USER" -g "$PG_SYSTEM_USER" -m 700 "$RUN_DIR"
        install -d -o "$PG_SYSTEM_USER" -g "$PG_SYSTEM_USER" -m 700 "$DATA_DIR"
        printf '%s\n' "$DATA_DIR" >"$DATADIR_FILE"
        ln -sfn "$LOG_FILE" "$STATE_DIR/log"
    else
        printf '%s\n' "$DATA_DIR" >"$DATADIR_FILE"
    fi
    install -d -o "$PG_SYSTEM_USER" -g "$PG_SYSTEM_USER" -m 700 "$SOCKET_DIR"
    if [[ ! -e "$LOG_FILE" ]]; then
        install -o "$PG_SYSTEM_USER" -g "$PG_SYSTEM_USER" -m 640 /dev/null "$LOG_FILE"
    fi
    chown "$PG_SYSTEM_USER:$PG_SYSTEM_USER" "$LOG_FILE"
}

# -------------------------------------------------------------------- ports --

port_free() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
# Servers bind with SO_REUSEADDR, so connections of a previous run lingering in TIME_WAIT
# do not make the port unusable; check the same way.
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}

free_port() {
    python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

recorded_port() {
    [[ -s "$PORT_FILE" ]] || return 1
    tr -dc '0-9' <"$PORT_FILE"
}

choose_port() {
    local old=""
    old="$(recorded_port || true)"
    if [[ -n "${PG_PORT:-}" ]]; then
        [[ "$PG_PORT" =~ ^[0-9]+$ ]] || die "PG_PORT must be a number, got '$PG_PORT'"
        port_free "$PG_PORT" || die "PG_PORT=$PG_PORT is already in use on 127.0.0.1"
        PORT="$PG_PORT"
    elif [[ -n "$old" ]] && port_free "$old"; then
        PORT="$old"
    else
        PORT="$(free_port)"
        [[ -z "$old" ]] || log "previous port $old is taken; using $PORT"
    fi
}

# ---------------------------------------------------------------- cluster --

pick_locale() {
    if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then
        printf 'C.UTF-8\n'
    else
        printf 'C\n'
    fi
}

init_cluster() {
    log "initialising a new cluster in $DATA_DIR ($("$PG_BIN/postgres" --version))"
    if ! as_pg "$PG_BIN/initdb" -D "$DATA_DIR" --auth=trust --username=postgres \
            -E UTF8 --locale="$(pick_locale)" >"$RUN_DIR/initdb.log" 2>&1; then
        cat "$RUN_DIR/initdb.log" >&2
        die "initdb failed"
    fi
    printf "\n# Local settings written by deploy/local/postgres.sh\ninclude_if_exists = 'mpp.conf'\n" |
        as_pg tee -a "$DATA_DIR/postgresql.conf" >/dev/null
}

write_local_conf() {
    local socket_dirs="$SOCKET_DIR"
    # Unix socket paths are limited to ~107 bytes; fall back to TCP only.
    if (( ${#SOCKET_DIR} + 16 > 100 )); then
        socket_dirs=""
    fi
    as_pg tee "$DATA_DIR/mpp.conf" >/dev/null <<EOF
# Written by deploy/local/postgres.sh on every start; edits are overwritten.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$socket_dirs'
max_connections = 200
shared_buffers = 128MB

# THROWAWAY TEST INSTANCE: durability is traded for speed. A crash of the
# machine (not of postgres) can lose or corrupt data. Never use for real data.
fsync = off
synchronous_commit = off
full_page_writes = off

log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
timezone = 'UTC'
EOF
}

pg_running() {
    [[ -n "$PG_BIN" && -f "$DATA_DIR/PG_VERSION" ]] || return 1
    as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" status >/dev/null 2>&1
}

psql_admin() {
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres "$@"
}

ensure_role_and_databases() {
    psql_admin <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${PG_USER_ROLE}') THEN
    CREATE ROLE ${PG_USER_ROLE} LOGIN CREATEDB PASSWORD '${PG_USER_PASSWORD}';
  ELSE
    ALTER ROLE ${PG_USER_ROLE} LOGIN CREATEDB PASSWORD '${PG_USER_PASSWORD}';
  END IF;
END
\$\$;
-- DROP DATABASE ... WITH (FORCE) must be able to end an autovacuum worker
-- that happens to be inside a throw-away test database.
GRANT pg_signal_backend TO ${PG_USER_ROLE};
SQL
    local db
    for db in "${DATABASES[@]}"; do
        psql_admin -v db="$db" -v owner="$PG_USER_ROLE" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\gexec
SQL
    done
}

url_for() {
    printf 'postgresql://%s:%s@127.0.0.1:%s/%s\n' "$PG_USER_ROLE" "$PG_USER_PASSWORD" "$1" "$2"
}

# ------------------------------------------------------------------ actions --

lock_state() {
    exec 9>"$STATE_DIR/.lock"
    flock -w 180 9 || die "another postgres.sh holds $STATE_DIR/.lock"
}

cmd_start() {
    if [[ -n "${POSTGRES_URL:-}" ]]; then
        log "POSTGRES_URL is set: using that server, nothing local is started"
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || die "missing: python3 (used to pick a free port)"
    init_state_paths
    lock_state

    find_pg_bin || install_postgres

    if pg_running; then
        PORT="$(recorded_port || true)"
        [[ -n "$PORT" ]] || die "server in $DATA_DIR is running but $PORT_FILE is missing; stop it with $0 stop"
        log "already running"
        url_for "$PORT" "$DEFAULT_DB"
        return 0
    fi

    prepare_run_dir
    if [[ ! -f "$DATA_DIR/PG_VERSION" ]]; then
        init_cluster
    fi
    choose_port
    write_local_conf
    printf '%s\n' "$PORT" >"$PORT_FILE"

    log "starting on 127.0.0.1:$PORT (data $DATA_DIR)"
    if ! as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -w -t 60 start >/dev/null 9>&-; then
        err "pg_ctl start failed; last 40 lines of $LOG_FILE:"
        tail -n 40 "$LOG_FILE" >&2 || true
        exit 1
    fi
    ensure_role_and_databases
    log "ready: role $PG_USER_ROLE, databases ${DATABASES[*]}"
    url_for "$PORT" "$DEFAULT_DB"
}

cmd_stop() {
    if [[ -n "${POSTGRES_URL:-}" ]]; then
        log "POSTGRES_URL is set: nothing local to stop"
        return 0
    fi
    init_state_paths
    lock_state
    if ! find_pg_bin || ! pg_running; then
        log "not running"
        return 0
    fi
    log "stopping (data $DATA_DIR)"
    as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m fast -w -t 60 stop >/dev/null
    log "stopped"
}

cmd_status() {
    if [[ -n "${POSTGRES_URL:-}" ]]; then
        log "external server (POSTGRES_URL): $(external_url "$DEFAULT_DB" | sed -E 's#(//[^:/@]*:)[^@]*@#\1***@#')"
        return 0
    fi
    init_state_paths
    local port
    port="$(recorded_port || true)"
    if find_pg_bin && pg_running; then
        log "running on 127.0.0.1:${port:-?} (data $DATA_DIR)"
        return 0
    fi
    log "not running (state dir $STATE_DIR)"
    return 3
}

cmd_url() {
    local db="${1:-$DEFAULT_DB}"
    if [[ -n "${POSTGRES_URL:-}" ]]; then
        external_url "$db"
        return 0
    fi
    init_state_paths
    local port
    port="$(recorded_port || true)"
    [[ -n "$port" ]] || die "no local server set up yet; run deploy/local/postgres.sh start"
    url_for "$port" "$db"
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        url) cmd_url "$@" ;;
        -h|--help|help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
