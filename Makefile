# StreamFlow feature platform. `make` lists the targets; `make demo` runs everything.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SF := $(VENV)/bin/streamflow
UV := .streamflow/uv/bin/uv
UV_VERSION := 0.13.8
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1
# The suite's workers (pytest-xdist), each with its own servers and folders (tests/__init__.py)
TEST_WORKERS ?= 2

# Offline tools must not phone home.
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DBT_VERSION_CHECK := false
export FEAST_USAGE := false
export DO_NOT_TRACK := 1
export UV_PYTHON_DOWNLOADS := never
export HOST PORT WORKERS

.PHONY: help prerequisites setup setup-spark setup-duckdb setup-flow setup-examples flow orchestrator-up orchestrator-down schedule db-up db-down redis-up redis-down spark-up spark-down pipeline demo test test-unit lint fmt dbt-build apply materialize \
        training-set check-skew serve bench clean clean-all monitor report docs ui

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(UV):
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || { echo "$(PYTHON) has no venv module (Debian and Ubuntu split it out): sudo apt-get install python3-venv"; exit 1; }
	$(PYTHON) -m venv .streamflow/uv
	.streamflow/uv/bin/pip install --quiet uv==$(UV_VERSION)

# --inexact: a sync keeps the Spark group's packages once `make setup-spark` added them.
# --compile-bytecode: every command is a new process; with PYTHONDONTWRITEBYTECODE set (as on
# these machines) nothing is ever cached, and each process compiled Feast and pandas again (4.1 s
# to import feast, 2.5 s compiled once at install).
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --inexact --compile-bytecode --python $(PYTHON)
	@touch $@

setup: $(VENV)/.synced ## Create .venv with the locked dependencies (idempotent)

db-up: setup ## Start the embedded PostgreSQL (no-op with DATABASE_URL)
	$(SF) db up

db-down: setup ## Stop the embedded PostgreSQL
	$(SF) db down

redis-up: setup ## Start a local Redis: 3-master cluster on 127.0.0.1:17001-17003 (REDIS_CLUSTER=0: one node, 16379)
	$(SF) redis up

redis-down: setup ## Stop the local Redis
	$(SF) redis down

setup-spark: setup ## Add the Spark engine's packages (pyspark, dbt-spark) to .venv; Java 17 from the OS
	$(UV) sync --frozen --inexact --compile-bytecode --python $(PYTHON) --group spark

spark-up: setup-spark ## Start a Spark standalone cluster on 127.0.0.1 (a master, two 1-core workers)
	$(SF) spark up

spark-down: setup ## Stop the Spark cluster
	$(SF) spark down

setup-duckdb: setup ## Add the DuckDB engine's packages (duckdb, dbt-duckdb, Feast's DuckDB store) to .venv
	$(UV) sync --frozen --inexact --compile-bytecode --python $(PYTHON) --group duckdb

setup-flow: setup ## Add Prefect (the flow, its server and UI) to .venv
	$(UV) sync --frozen --inexact --compile-bytecode --python $(PYTHON) --group flow

setup-examples: setup ## Add the examples' packages (scikit-learn, matplotlib) to .venv: examples/
	$(UV) sync --frozen --inexact --compile-bytecode --python $(PYTHON) --group examples

orchestrator-up: setup-flow ## Start a Prefect server (API + UI) on 127.0.0.1:PREFECT_PORT (default 4200), data in .streamflow/prefect
	$(SF) orchestrator up

orchestrator-down: setup-flow ## Stop the Prefect server
	$(SF) orchestrator down

flow: setup-flow ## The monthly job once as a Prefect flow: tasks, retries, artifacts (PREFECT_API_URL: report to that server)
	$(SF) flow

schedule: setup-flow ## Serve the monthly job on SCHEDULE_CRON (1st of the month, 06:00 UTC) and the replay on REPLAY_CRON (hourly)
	$(SF) schedule

pipeline: setup ## Database up, ingest every month, dbt build, feast apply, materialize, monitor, training set
	$(SF) pipeline

demo: pipeline ## The whole job: pipeline, then serve the features API on HOST:PORT
	$(SF) serve

dbt-build: db-up ## dbt build of the months loaded or restated since the last good build
	$(SF) dbt

apply: db-up ## feast apply (after dbt)
	$(SF) apply

materialize: db-up ## Load the months the online store lacks (new or restated), oldest first; FULL=1: all
	$(SF) materialize $(if $(FULL),--full)

monitor: db-up ## Feast feature monitoring per view per as_of month + drift vs the baseline; FULL=1: all months
	$(SF) monitor $(if $(FULL),--full)

report: db-up ## data/reports/feature_quality.html: distributions, null rates, drift, churn rate by month (one file)
	$(SF) report

docs: db-up ## dbt docs site with lineage to the exposures, static: data/reports/dbt-docs/index.html
	$(SF) docs

ui: db-up ## Feast's UI (monitoring pages included), read-only, on 127.0.0.1:UI_PORT (default 8888)
	$(SF) ui

training-set: db-up ## Point-in-time training set -> data/processed/training_df.csv
	$(SF) training-set

check-skew: db-up ## Online values == historical values at the latest as_of, for every user
	$(SF) check-skew

serve: setup ## Serve an already built stack on HOST:PORT with WORKERS workers
	$(SF) serve

prerequisites: ## Check (as root with apt: install) the system packages make test needs
	@scripts/prerequisites.sh

test: prerequisites setup-spark setup-duckdb setup-flow setup-examples ## The whole suite on TEST_WORKERS workers (default 2): unit, integration, reliability, browser, Spark (starts its own servers)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

test-unit: setup-flow ## The fast tier: no server, no dbt, no Feast apply (under a minute), on TEST_WORKERS workers
	$(PY) -m pytest -n $(TEST_WORKERS) tests/unit

lint: setup ## sqlfluff (SQL style) and ruff (Python)
	$(VENV)/bin/sqlfluff lint dbt_project/models
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: setup ## Apply ruff formatting and sqlfluff fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/sqlfluff fix dbt_project/models

bench: setup-flow ## Benchmarks (serving and pipeline), side by side; BENCH_SIZES=7043,100000,1000000 for 1M
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get install -y -qq wrk >/dev/null; } || { echo "bench needs wrk: apt-get install wrk"; exit 1; }
	$(PY) -m bench

clean: ## Remove generated files (data/, dbt's target and logs); keeps the database, Redis and .venv
	@echo "removing data/ dbt_project/target dbt_project/logs (the database in .streamflow stays: make clean-all)"
	rm -rf data dbt_project/target dbt_project/logs

clean-all: ## Also stop and DELETE the embedded database, the local Redis and .venv (.streamflow/)
	@echo "stopping the embedded PostgreSQL and local Redis; deleting .streamflow/ (database, secrets) and .venv"
	-$(SF) db down
	-$(SF) redis down
	-$(SF) orchestrator down
	rm -rf .streamflow data dbt_project/target dbt_project/logs $(VENV)
