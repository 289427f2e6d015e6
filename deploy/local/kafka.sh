#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft combined broker+controller), run from jars.
#
# Usage: deploy/local/kafka.sh start|stop|status|bootstrap|logs [-f] [LINES]
#
#   start      fetch the jars once (Maven -> .cache/kafka/lib), format storage once,
#              start the broker in the background and wait until it answers.
#              Idempotent: prints the bootstrap address if already running.
#   stop       SIGTERM the broker (SIGKILL after 30 s).
#   status     "running"/"not running" plus the bootstrap address; exit 0 / 3.
#   bootstrap  prints 127.0.0.1:PORT (exit 1 if not running).
#   logs       last LINES (default 100) lines of broker.log; -f to follow.
#
# Environment:
#   KAFKA_BOOTSTRAP_SERVERS  use an external broker: start/stop do nothing,
#                            bootstrap prints this value.
#   KAFKA_STATE_DIR          state dir (default <repo>/.local/kafka).
#   KAFKA_PORT               client port (default: previous port if free, else a free one).
#   KAFKA_HEAP_OPTS          JVM heap flags (default -Xms256m -Xmx1g).
#   KAFKA_START_TIMEOUT      seconds to wait for the broker (default 90).
#   KAFKA_WIPE_ON_CPORT_CHANGE=1  wipe data/ if the previous controller port is
#                            taken (default: keep data; KRaft accepts the new port).
#   JAVA_HOME                java to use (default: java on PATH).
#
# State dir layout: server.properties, data/, broker.log (+ broker.log.prev from
# the previous start), console.log (JVM stdout/stderr), pid, ports
# ("PORT CONTROLLER_PORT"), bootstrap (present while running), format.out/tools.log
# (storage formatting).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"
LOG4J_CONFIG="$SCRIPT_DIR/kafka/log4j2.properties"
CACHE_DIR="$REPO_ROOT/.cache/kafka"
LIB_DIR="$CACHE_DIR/lib"
LIB_MARKER="$CACHE_DIR/lib.pom.sha256"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT=30

log() { printf '[kafka] %s\n' "$*"; }
err() { printf '[kafka] ERROR: %s\n' "$*" >&2; }
die() { err "$*"; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

# ---------------------------------------------------------------- state dir --

init_state_paths() {
    local dir="${KAFKA_STATE_DIR:-$REPO_ROOT/.local/kafka}"
    mkdir -p "$dir"
    STATE_DIR="$(cd "$dir" && pwd)"
    DATA_DIR="$STATE_DIR/data"
    CONFIG="$STATE_DIR/server.properties"
    PID_FILE="$STATE_DIR/pid"
    PORTS_FILE="$STATE_DIR/ports"
    BOOTSTRAP_FILE="$STATE_DIR/bootstrap"
    BROKER_LOG="$STATE_DIR/broker.log"
    CONSOLE_LOG="$STATE_DIR/console.log"
}

# ------------------------------------------------------------------- checks --

JAVA_BIN=""

find_java() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        JAVA_BIN="$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then
        JAVA_BIN="$(command -v java)"
    else
        JAVA_BIN=""
    fi
}

# Prints the major version of $JAVA_BIN ("1.8.0_x" -> 8, "17.0.15" -> 17).
java_major() {
    local line ver
    line="$("$JAVA_BIN" -version 2>&1 | grep -m1 -E 'version "' || true)"
    ver="${line#*version \"}"
    ver="${ver%%\"*}"
    if [[ "$ver" == 1.* ]]; then
        ver="${ver#1.}"
    fi
    ver="${ver%%[.+-]*}"
    [[ "$ver" =~ ^[0-9]+$ ]] || ver=0
    printf '%s\n' "$ver"
}

# check_tools NEED_MAVEN: verify java >= 17 (and mvn when the jar cache must be filled).
check_tools() {
    local need_mvn="$1" missing=()
    find_java
    if [[ -z "$JAVA_BIN" ]]; then
        missing+=("java (JDK/JRE 17 or newer; on Debian: apt-get install openjdk-17-jre-headless)")
    else
        local major
        major="$(java_major)"
        if (( major < 17 )); then
            missing+=("java >= 17 (found major version $major at $JAVA_BIN)")
        fi
    fi
    if [[ "$need_mvn" == 1 ]] && ! command -v mvn >/dev/null 2>&1; then
        missing+=("mvn (Apache Maven, needed once to fetch the Kafka jars into .cache/kafka/lib; on Debian: apt-get install maven)")
    fi
    if (( ${#missing[@]} > 0 )); then
        local m
        for m in "${missing[@]}"; do err "missing: $m"; done
        exit 1
    fi
    if ! command -v python3 >/dev/null 2>&1; then
        die "missing: python3 (used to pick free ports)"
    fi
}

# ---------------------------------------------------------------- jar cache --

pom_hash() {
    sha256sum "$POM" | awk '{print $1}'
}

libs_ready() {
    [[ -f "$LIB_MARKER" && -d "$LIB_DIR" ]] || return 1
    [[ "$(cat "$LIB_MARKER")" == "$(pom_hash)" ]] || return 1
    compgen -G "$LIB_DIR/kafka_2.13-*.jar" >/dev/null
}

ensure_libs() {
    mkdir -p "$CACHE_DIR"
    # Serialise concurrent fills (parallel test brokers share the cache).
    exec 8>"$CACHE_DIR/.lock"
    flock -w 900 8 || die "timed out waiting for the jar cache lock $CACHE_DIR/.lock"
    if libs_ready; then
        exec 8>&-
        return 0
    fi
    log "fetching Kafka jars with Maven into .cache/kafka/lib (first run only)..."
    local tmp="$CACHE_DIR/lib.tmp.$$" t0=$SECONDS
    rm -rf "$tmp"
    # Debian's mvn prints bare ANSI resets even with -q -B: strip them.
    if ! mvn -q -B -f "$POM" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp" 8>&- 2>&1 |
            sed -e 's/\x1b\[[0-9;]*m//g' -e '/^[[:space:]]*$/d'; then
        rm -rf "$tmp"
        die "Maven could not fetch the Kafka jars (see output above)"
    fi
    compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || die "Maven finished but no kafka_2.13 jar in $tmp"
    rm -rf "$LIB_DIR"
    mv "$tmp" "$LIB_DIR"
    pom_hash >"$LIB_MARKER"
    log "jars ready ($(find "$LIB_DIR" -name '*.jar' | wc -l) jars, $((SECONDS - t0)) s)"
    exec 8>&-
}

# -------------------------------------------------------------------- ports --

# port_free PORT: true if nothing listens on / holds 127.0.0.1:PORT.
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

# free_ports N: prints N distinct free ports (all bound at once, so they differ).
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

port_answers() {
    # shellcheck disable=SC2016  # $1 is expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# ------------------------------------------------------------------ process --

# running_pid: prints the broker pid if the pid file names a live kafka.Kafka
# process started with this state dir's server.properties.
running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' <"$PID_FILE")"
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/cmdline" ]]; then
        local cmd
        cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
        [[ "$cmd" == *"kafka.Kafka $CONFIG"* ]] || return 1
    fi
    printf '%s\n' "$pid"
}

current_port() {
    [[ -f "$PORTS_FILE" ]] || return 1
    awk '{print $1; exit}' "$PORTS_FILE"
}

broker_started_in_log() {
    [[ -f "$BROKER_LOG" ]] && grep -qE 'Kafka Server started|started \(kafka\.server\.KafkaRaftServer\)' "$BROKER_LOG"
}

# ------------------------------------------------------------------- config --

write_config() {
    local port="$1" cport="$2"
    cat >"$CONFIG" <<EOF
# Generated by deploy/local/kafka.sh on each start; edits are overwritten.
# Single node, KRaft combined mode (broker + controller in one JVM).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${cport}
listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${cport}
advertised.listeners=PLAINTEXT://127.0.0.1:${port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=${DATA_DIR}

# Single replica everywhere.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

# Topics are created explicitly by the services; retention is left at the
# broker default and set per topic.
num.partitions=3
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0

# Small box (2 cores).
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
EOF
}

# new_cluster_id: 22-char base64url UUID as Kafka's Uuid.toString() produces.
new_cluster_id() {
    python3 - <<'PY'
import base64, uuid
while True:
    cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not cid.startswith("-"):
        print(cid)
        break
PY
}

format_storage() {
    local cid
    cid="$(new_cluster_id)"
    log "formatting KRaft storage in $DATA_DIR (cluster id $cid)"
    mkdir -p "$DATA_DIR"
    if ! "$JAVA_BIN" -Xmx256m -cp "$LIB_DIR/*" \
            -Dlog4j2.configurationFile="$LOG4J_CONFIG" -Dkafka.logs.dir="$STATE_DIR" -Dkafka.log.name=tools \
            kafka.tools.StorageTool format -t "$cid" -c "$CONFIG" >"$STATE_DIR/format.out" 2>&1 9>&-; then
        cat "$STATE_DIR/format.out" >&2
        die "kafka storage format failed"
    fi
}

# choose_ports: sets PORT and CPORT (previous ones when still free), and WIPE=1
# when the data dir must be re-initialised.
choose_ports() {
    local old_port="" old_cport=""
    if [[ -f "$PORTS_FILE" ]]; then
        read -r old_port old_cport _ <"$PORTS_FILE" || true
    fi
    WIPE=0
    local fresh
    fresh="$(free_ports 2)"
    if [[ -n "${KAFKA_PORT:-}" ]]; then
        [[ "$KAFKA_PORT" =~ ^[0-9]+$ ]] || die "KAFKA_PORT must be a number, got '$KAFKA_PORT'"
        port_free "$KAFKA_PORT" || die "KAFKA_PORT=$KAFKA_PORT is already in use on 127.0.0.1"
        PORT="$KAFKA_PORT"
    elif [[ -n "$old_port" ]] && port_free "$old_port"; then
        PORT="$old_port"
    else
        PORT="${fresh%% *}"
    fi
    if [[ -n "$old_cport" && "$old_cport" != "$PORT" ]] && port_free "$old_cport"; then
        CPORT="$old_cport"
    else
        CPORT="${fresh##* }"
        [[ "$CPORT" != "$PORT" ]] || CPORT="${fresh%% *}"
        # With static controller.quorum.voters and a single voter, KRaft takes
        # a new controller port without re-formatting (checked with 4.3.1:
        # topics survive). Set KAFKA_WIPE_ON_CPORT_CHANGE=1 to start clean instead.
        if [[ -n "$old_cport" && -f "$DATA_DIR/meta.properties" ]]; then
            if [[ "${KAFKA_WIPE_ON_CPORT_CHANGE:-0}" == 1 ]]; then
                log "controller port $old_cport is taken; using $CPORT and re-initialising the data dir"
                WIPE=1
            else
                log "controller port $old_cport is taken; using $CPORT (data kept)"
            fi
        fi
    fi
}

# ------------------------------------------------------------------ actions --

wait_ready() {
    local pid="$1" port="$2" deadline=$((SECONDS + START_TIMEOUT))
    while (( SECONDS < deadline )); do
        if ! kill -0 "$pid" 2>/dev/null; then
            return 2
        fi
        if broker_started_in_log && port_answers "$port"; then
            return 0
        fi
        sleep 0.3
    done
    return 1
}

show_failure_logs() {
    if [[ -f "$BROKER_LOG" ]]; then
        err "last 40 lines of $BROKER_LOG:"
        tail -n 40 "$BROKER_LOG" >&2
    fi
    if [[ -s "$CONSOLE_LOG" ]]; then
        err "last 20 lines of $CONSOLE_LOG:"
        tail -n 20 "$CONSOLE_LOG" >&2
    fi
}

launch() {
    local heap="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
    local -a heap_opts
    read -r -a heap_opts <<<"$heap"
    rm -f "$PID_FILE"
    if [[ -f "$BROKER_LOG" ]]; then mv -f "$BROKER_LOG" "$BROKER_LOG.prev"; fi
    : >"$CONSOLE_LOG"
    # setsid: own session, survives the calling shell; the wrapper writes its
    # own pid and execs java, so the pid file holds the JVM's pid.
    # shellcheck disable=SC2016  # $$/$1 are for the inner bash
    nohup setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka-launch "$PID_FILE" \
        "$JAVA_BIN" "${heap_opts[@]}" \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$LOG4J_CONFIG" -Dkafka.logs.dir="$STATE_DIR" \
        -cp "$LIB_DIR/*" kafka.Kafka "$CONFIG" \
        </dev/null >>"$CONSOLE_LOG" 2>&1 8>&- 9>&- &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s "$PID_FILE" ]] && break
        sleep 0.1
    done
    [[ -s "$PID_FILE" ]] || die "broker process did not start (no pid file)"
}

# terminate_pid PID: SIGTERM, wait up to STOP_TIMEOUT s, then SIGKILL.
terminate_pid() {
    local pid="$1" deadline=$((SECONDS + STOP_TIMEOUT))
    kill -TERM "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid still alive after ${STOP_TIMEOUT} s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
}

cmd_start() {
    if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
        log "KAFKA_BOOTSTRAP_SERVERS is set ($KAFKA_BOOTSTRAP_SERVERS): using that broker, nothing local is started"
        return 0
    fi
    init_state_paths
    exec 9>"$STATE_DIR/.lock"
    flock -w "$((START_TIMEOUT + 60))" 9 || die "another kafka.sh holds $STATE_DIR/.lock"

    local pid port
    if pid="$(running_pid)"; then
        port="$(current_port || true)"
        if [[ -n "$port" ]] && { port_answers "$port" || wait_ready "$pid" "$port"; }; then
            [[ -n "${KAFKA_PORT:-}" && "$KAFKA_PORT" != "$port" ]] &&
                log "note: already running on port $port (KAFKA_PORT=$KAFKA_PORT ignored)"
            printf '127.0.0.1:%s\n' "$port" >"$BOOTSTRAP_FILE"
            log "already running (pid $pid)"
            printf '127.0.0.1:%s\n' "$port"
            return 0
        fi
        die "broker pid $pid is alive but 127.0.0.1:${port:-?} does not answer; run '$0 stop' first"
    fi
    rm -f "$PID_FILE" "$BOOTSTRAP_FILE"

    local need_mvn=0
    libs_ready || need_mvn=1
    check_tools "$need_mvn"
    ensure_libs

    local attempt rc t0=$SECONDS
    for attempt in 1 2 3; do
        choose_ports
        if [[ "$WIPE" == 1 ]] || { [[ -d "$DATA_DIR" ]] && [[ ! -f "$DATA_DIR/meta.properties" ]]; }; then
            rm -rf "$DATA_DIR"
        fi
        write_config "$PORT" "$CPORT"
        printf '%s %s\n' "$PORT" "$CPORT" >"$PORTS_FILE"
        if [[ ! -f "$DATA_DIR/meta.properties" ]]; then
            format_storage
        fi
        log "starting broker on 127.0.0.1:$PORT (controller 127.0.0.1:$CPORT), state in $STATE_DIR"
        launch
        pid="$(tr -dc '0-9' <"$PID_FILE")"
        rc=0
        wait_ready "$pid" "$PORT" || rc=$?
        if (( rc == 0 )); then
            printf '127.0.0.1:%s\n' "$PORT" >"$BOOTSTRAP_FILE"
            log "started (pid $pid) in $((SECONDS - t0)) s"
            printf '127.0.0.1:%s\n' "$PORT"
            return 0
        fi
        if (( rc == 2 )) && [[ -z "${KAFKA_PORT:-}" ]] &&
            grep -qs 'Address already in use' "$BROKER_LOG" "$CONSOLE_LOG"; then
            log "port clash while binding (attempt $attempt); retrying with other ports"
            rm -f "$PORTS_FILE"
            continue
        fi
        break
    done

    if (( rc == 2 )); then
        err "broker process exited during startup"
    else
        err "broker did not become ready within ${START_TIMEOUT} s"
        pid="$(running_pid || true)"
        if [[ -n "$pid" ]]; then
            log "stopping the unready broker (pid $pid)"
            terminate_pid "$pid"
        fi
    fi
    show_failure_logs
    rm -f "$PID_FILE"
    exit 1
}

cmd_stop() {
    if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
        log "KAFKA_BOOTSTRAP_SERVERS is set ($KAFKA_BOOTSTRAP_SERVERS): nothing local to stop"
        return 0
    fi
    init_state_paths
    exec 9>"$STATE_DIR/.lock"
    flock -w 120 9 || die "another kafka.sh holds $STATE_DIR/.lock"
    local pid
    if ! pid="$(running_pid)"; then
        log "not running"
        rm -f "$PID_FILE" "$BOOTSTRAP_FILE"
        return 0
    fi
    log "stopping broker (pid $pid)"
    terminate_pid "$pid"
    rm -f "$PID_FILE" "$BOOTSTRAP_FILE"
    log "stopped"
}

cmd_status() {
    if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
        log "external broker (KAFKA_BOOTSTRAP_SERVERS): $KAFKA_BOOTSTRAP_SERVERS"
        return 0
    fi
    init_state_paths
    local pid port
    if pid="$(running_pid)"; then
        port="$(current_port || true)"
        if [[ -n "$port" ]] && port_answers "$port"; then
            log "running (pid $pid), bootstrap 127.0.0.1:$port"
            return 0
        fi
        log "process $pid is alive but 127.0.0.1:${port:-?} does not answer (starting or hung)"
        return 3
    fi
    log "not running (state dir $STATE_DIR)"
    return 3
}

cmd_bootstrap() {
    if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
        printf '%s\n' "$KAFKA_BOOTSTRAP_SERVERS"
        return 0
    fi
    init_state_paths
    local port
    if running_pid >/dev/null && port="$(current_port)" && port_answers "$port"; then
        printf '127.0.0.1:%s\n' "$port"
        return 0
    fi
    err "not running; start it with deploy/local/kafka.sh start"
    return 1
}

cmd_logs() {
    if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
        log "KAFKA_BOOTSTRAP_SERVERS is set: no local broker logs"
        return 0
    fi
    init_state_paths
    local follow=0 lines=100 a
    for a in "$@"; do
        case "$a" in
            -f|--follow) follow=1 ;;
            *[!0-9]*|'') die "logs: unknown argument '$a'" ;;
            *) lines="$a" ;;
        esac
    done
    [[ -f "$BROKER_LOG" ]] || die "no log yet at $BROKER_LOG"
    if (( follow )); then
        exec tail -n "$lines" -F "$BROKER_LOG"
    fi
    tail -n "$lines" "$BROKER_LOG"
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        bootstrap) cmd_bootstrap ;;
        logs) cmd_logs "$@" ;;
        -h|--help|help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
