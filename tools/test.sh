#!/usr/bin/env bash
# Starts a throwaway Kafka broker and the test PostgreSQL, runs the whole suite, stops what it started.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
started_kafka=0
started_pg=0
cleanup() {
  if [ "$started_kafka" = 1 ]; then env -u KAFKA_BOOTSTRAP_SERVERS KAFKA_STATE_DIR="$root/.local/kafka-test" bash deploy/local/kafka.sh stop >/dev/null 2>&1 || true; fi
  if [ "$started_pg" = 1 ]; then bash deploy/local/postgres.sh stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
# Stop on exit only what this run started: a broker or database already running stays up.
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  if ! KAFKA_STATE_DIR="$root/.local/kafka-test" bash deploy/local/kafka.sh status >/dev/null 2>&1; then
    started_kafka=1
  fi
  KAFKA_STATE_DIR="$root/.local/kafka-test" bash deploy/local/kafka.sh start
  KAFKA_BOOTSTRAP_SERVERS="$(KAFKA_STATE_DIR="$root/.local/kafka-test" bash deploy/local/kafka.sh bootstrap)"
  export KAFKA_BOOTSTRAP_SERVERS
fi
if [ -z "${POSTGRES_URL:-}" ]; then
  if ! bash deploy/local/postgres.sh status >/dev/null 2>&1; then
    started_pg=1
  fi
  bash deploy/local/postgres.sh start
fi
MPP_TEST_POSTGRES_URL="$(bash deploy/local/postgres.sh url mpp_test)"
export MPP_TEST_POSTGRES_URL
mkdir -p artifacts
bash deploy/local/chromium.sh ensure
.venv/bin/python -m pytest -p no:cacheprovider "$@"
