# The one entry point for developers, CI and the README.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv run test test-unit lint format contracts contracts-check bench infra-up infra-down token clean rebuild-reporting

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

venv: ## Create .venv from the hash-locked requirements
	@bash tools/venv.sh

run: venv ## Start Kafka and every service on SQLite, feed demo applications, print the URLs (Ctrl-C stops)
	@$(PY) -m tools.run_platform

test: venv ## Start Kafka and PostgreSQL, then run contract, unit, integration and e2e tests
	@bash tools/test.sh

test-unit: venv ## Unit and contract tests only (no infrastructure)
	@$(PY) -m pytest -m unit -q

lint: venv ## ruff format check, ruff lint, mypy strict, import-linter, stale contracts
	@$(PY) -m ruff format --check .
	@$(PY) -m ruff check .
	@$(PY) -m mypy contracts/src kit/src services/*/src tests tools
	@.venv/bin/lint-imports
	@$(PY) -m mpp.contracts.generate --check

format: venv ## Apply ruff formatting and safe fixes
	@$(PY) -m ruff format .
	@$(PY) -m ruff check --fix .

contracts: venv ## Regenerate JSON Schemas, the AsyncAPI document and CATALOGUE.md
	@$(PY) -m mpp.contracts.generate

contracts-check: venv ## Fail when generated contracts are stale or changed incompatibly
	@$(PY) -m mpp.contracts.generate --check

bench: venv ## Throughput and latency on the real local broker and PostgreSQL (writes artifacts/bench.json)
	@bash tools/bench.sh $(BENCH_ARGS)

infra-up: ## Start the local Kafka broker and PostgreSQL
	@bash deploy/local/kafka.sh start
	@bash deploy/local/postgres.sh start

infra-down: ## Stop the local Kafka broker and PostgreSQL
	@bash deploy/local/kafka.sh stop || true
	@bash deploy/local/postgres.sh stop || true

rebuild-reporting: venv ## Empty the reporting read models and replay every topic into them (stop its projector first)
	@$(PY) -m mpp.reporting rebuild $(ARGS)

token: venv ## Issue a development token: make token ARGS="--subject o1 --roles officer --agency dpmptsp --site mpp-kota-sukamaju" (a kiosk: --subject kiosk-1 --roles kiosk --site mpp-kota-sukamaju)
	@$(PY) -m mpp.kit.auth issue $(ARGS)

clean: infra-down ## Remove local state (databases, broker data, caches)
	rm -rf .local artifacts .mypy_cache .ruff_cache .pytest_cache
