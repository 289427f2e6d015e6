#!/usr/bin/env bash
# Throughput and latency on a real broker and PostgreSQL: starts a throwaway Kafka broker (unless
# KAFKA_BOOTSTRAP_SERVERS is set) and the local PostgreSQL (unless POSTGRES_URL is set or it is already
# running), runs `python -m tools.bench "$@"` (writes artifacts/bench.json), stops what it started.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
kafka_state="$root/.local/kafka-bench"
started_kafka=0
started_pg=0
cleanup() {
  # kafka.sh stop does nothing while KAFKA_BOOTSTRAP_SERVERS is set (it means "external broker").
  if [ "$started_kafka" = 1 ]; then
    env -u KAFKA_BOOTSTRAP_SERVERS KAFKA_STATE_DIR="$kafka_state" bash deploy/local/kafka.sh stop >/dev/null 2>&1 || true
  fi
  if [ "$started_pg" = 1 ]; then bash deploy/local/postgres.sh stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  KAFKA_STATE_DIR="$kafka_state" bash deploy/local/kafka.sh start
  started_kafka=1
  KAFKA_BOOTSTRAP_SERVERS="$(KAFKA_STATE_DIR="$kafka_state" bash deploy/local/kafka.sh bootstrap)"
  export KAFKA_BOOTSTRAP_SERVERS
  # Tells the bench which broker build it is measuring (the jars deploy/local/kafka.sh runs).
  export MPP_BENCH_LOCAL_KAFKA=1
  MPP_BENCH_KAFKA_PID="$(cat "$kafka_state/pid" 2>/dev/null || true)"
  export MPP_BENCH_KAFKA_PID
fi
if [ -z "${POSTGRES_URL:-}" ]; then
  # Only stop PostgreSQL on exit if this script started it: a running server may serve other work.
  if ! bash deploy/local/postgres.sh status >/dev/null 2>&1; then
    bash deploy/local/postgres.sh start
    started_pg=1
  fi
fi
MPP_BENCH_POSTGRES_URL="$(bash deploy/local/postgres.sh url mpp_test)"
export MPP_BENCH_POSTGRES_URL
if [ -z "${POSTGRES_URL:-}" ]; then
  # The postmaster's pid, so the bench can report the server's CPU (backends included).
  pg_datadir="$(cat "${PG_STATE_DIR:-$root/.local/postgres}/datadir" 2>/dev/null || true)"
  MPP_BENCH_POSTGRES_PID="$(head -n 1 "$pg_datadir/postmaster.pid" 2>/dev/null || true)"
  export MPP_BENCH_POSTGRES_PID
fi
mkdir -p artifacts
.venv/bin/python -m tools.bench "$@"
