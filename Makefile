# lfr-stream: `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
LFR := $(VENV)/bin/lfr
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help prereqs setup lint typecheck test unit stack-up stack-down demo bench chart chart-files

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# `make test` also needs Chromium (the HTML report's browser test) and etcd (the chart
# against a real API server); `make demo` needs neither
test: LFR_PREREQS_EXTRA ?= browser kube
export LFR_PREREQS_EXTRA

prereqs: ## install the missing system packages (ClickHouse, Prometheus, Java, Maven; as root)
	@bash deploy/local/prerequisites.sh

setup: prereqs $(VENV)/.installed ## system packages, then .venv with the project and its test extras

lint: setup ## ruff: lint and formatting
	$(VENV)/bin/ruff check common streams schemas sinks tests bench
	$(VENV)/bin/ruff format --check common streams schemas sinks tests bench

typecheck: setup ## mypy with disallow_untyped_defs on the packages
	$(VENV)/bin/mypy

test: setup ## lint, types, schemas, chart lint, then every test on the real stack (first run builds helm and kube-apiserver, ~10 min)
	$(MAKE) lint typecheck
	$(LFR) schemas check
	bash .ci/helm.sh lint
	bash .ci/kube-apiserver.sh install >/dev/null
	$(PY) -m pytest $(PYTEST_ARGS)

unit: setup ## only the tests that need no services
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

stack-up: setup ## start the local Kafka, ClickHouse and Prometheus
	$(LFR) stack up

stack-down: setup ## stop the local stack
	$(LFR) stack down

demo: setup ## simulate the Croydon pilot end to end and print the report
	$(LFR) demo

bench: setup ## run the benchmarks; figures land in bench/results/
	$(LFR) stack up
	$(PY) bench/codec_bench.py
	$(PY) bench/core_bench.py
	$(PY) bench/sink_bench.py
	LFR_BENCH_ROUNDS=$${LFR_BENCH_ROUNDS:-3} $(PY) bench/worker_bench.py
	$(PY) bench/batch_source_bench.py
	$(PY) bench/latency_bench.py
	$(PY) bench/alert_tables_bench.py

chart: ## lint, render and test the Helm chart offline
	bash .ci/helm.sh

chart-files: ## copy deploy/ dashboards and rules into the chart
	bash .ci/helm.sh sync-files
