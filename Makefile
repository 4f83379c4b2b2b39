# amiflow — `make run` starts the platform, `make test` runs the whole suite. `make help` lists all.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA_JARS := .cache/kafka/lib/.fetched
# `make run` shows real traffic: this many simulated meters behind simulated DTUs (0: none).
SIMULATED_METERS ?= 1000
# kustomize builds deploy/k8s in the suite; installed from the Go module proxy into .tools/bin.
KUSTOMIZE_VERSION := v5.8.0
KUSTOMIZE := .tools/bin/.kustomize-$(KUSTOMIZE_VERSION)
# The console and portal (services/console/web): npm packages from package-lock.json, built by Vite.
WEB := services/console/web
WEB_DEPS := $(WEB)/node_modules/.installed
WEB_DIST := $(WEB)/dist/index.html
WEB_SOURCES := $(shell find $(WEB)/src $(WEB)/public -type f 2>/dev/null) $(addprefix $(WEB)/,index.html vite.config.ts tsconfig.json)

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z][a-z0-9-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

venv: $(STAMP) ## create the virtual environment from requirements.lock
	@echo "environment ready: $(VENV)"

$(KAFKA_JARS): tools/kafka/pom.xml | $(STAMP)
	$(BIN)/python -m amiflow_runtime.localkafka fetch
	touch $@

kafka-jars: $(KAFKA_JARS) ## fetch the Apache Kafka broker's jars from Maven Central (cached in .cache/)

$(KUSTOMIZE):
	@command -v go >/dev/null || { echo "Go is needed to install kustomize (apt-get install golang-go)"; exit 1; }
	GOBIN=$(CURDIR)/.tools/bin go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	touch $@

$(WEB_DEPS): $(WEB)/package.json $(WEB)/package-lock.json
	@command -v npm >/dev/null || { echo "Node.js 20.19+ with npm is needed to build the console"; exit 1; }
	cd $(WEB) && npm ci --no-audit --no-fund
	touch $@

$(WEB_DIST): $(WEB_DEPS) $(WEB_SOURCES)
	cd $(WEB) && npm run build

web: $(WEB_DIST) ## build the operator console and customer portal (type-check + Vite) into services/console/web/dist

k8s-tools: $(KUSTOMIZE) ## install the pinned kustomize from the Go module proxy into .tools/bin

k8s: $(STAMP) ## regenerate deploy/k8s/base and components/monitoring from the registry, catalog and dashboard (commit)
	$(BIN)/python -m deploy.k8s.generate

k8s-check: $(STAMP) $(KUSTOMIZE) ## build every deploy/k8s overlay and validate it offline (part of make test)
	$(BIN)/pytest -q tests/deploy

run: $(STAMP) $(KAFKA_JARS) $(WEB_DIST) ## start the broker, every service, the console on :8007 and ~1000 simulated meters (Ctrl-C stops all)
	$(BIN)/amiflow up --simulate $(SIMULATED_METERS)

test: $(STAMP) $(KAFKA_JARS) $(KUSTOMIZE) $(WEB_DIST) ## the whole suite: unit, integration and end-to-end on real Kafka and PostgreSQL
	$(BIN)/pytest

bench: $(STAMP) $(KAFKA_JARS) ## the benchmark (~25 min): B0 raw Kafka, pipeline, latency, settlement, gateway, decode → bench-results/latest/
	$(BIN)/python -m amiflow_bench $(BENCH_ARGS)

test-unit: $(STAMP) $(KUSTOMIZE) ## the fast loop: pure tests only, no servers
	$(BIN)/pytest -m "not integration and not e2e"

lint: $(STAMP) ## ruff, mypy and the import contracts (services share only schemas and the runtime)
	$(BIN)/ruff check .
	$(BIN)/mypy schemas/amiflow_schemas services
	$(BIN)/lint-imports

schemas: $(STAMP) ## regenerate JSON Schema and AsyncAPI files from schemas/ (commit the result)
	$(BIN)/python -m amiflow_schemas.generate

lock: ## recompile requirements.lock from requirements.in (and the images' runtime subset of it)
	$(BIN)/uv pip compile requirements.in --python-version 3.11 --generate-hashes -o requirements.lock
	$(BIN)/uv pip compile deploy/docker/requirements-runtime.in -c requirements.lock --python-version 3.11 \
		--generate-hashes -o deploy/docker/requirements-runtime.lock

kafka-start: $(KAFKA_JARS) ## start a detached local broker on 127.0.0.1:9092 (data in data/kafka)
	$(BIN)/amiflow kafka start

kafka-stop: ## stop the detached local broker
	$(BIN)/amiflow kafka stop

clean: ## remove the local data folder (SQLite files, broker storage); keeps the venv, jar cache and node_modules
	rm -rf data

.PHONY: help venv kafka-jars web k8s-tools k8s k8s-check run test bench test-unit lint schemas lock kafka-start kafka-stop clean
