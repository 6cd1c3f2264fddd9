# hotpath developer commands. `make test` is all CI runs; the test session starts its own broker.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
SETUP_STAMP := $(VENV)/.setup-stamp
# The first interpreter that is really Python 3.11+ (pyenv shims exist even for missing versions).
PYTHON ?= $(shell for candidate in python3.13 python3.12 python3.11 python3; do \
	  $$candidate -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 \
	    && { command -v $$candidate; break; }; done)
LINT_PATHS := $(wildcard stream tests deploy bench)

.PHONY: help setup kafka-up kafka-down topics test test-faults test-rebalance lint clean

help:
	@echo "make setup        create $(VENV) (Python 3.11+) and install hotpath with its test, demo and aws extras"
	@echo "make kafka-up     start a local Apache Kafka broker on 127.0.0.1:9092 (no Docker needed)"
	@echo "make kafka-down   stop it"
	@echo "make topics       create or update the topics declared in topics/topics.yaml"
	@echo "make test         run the whole test suite (starts a throwaway broker itself)"
	@echo "make test-faults  run only the fault-injection tests"
	@echo "make test-rebalance  run only the test that rebalances a group of workers under load"
	@echo "make lint         ruff check"
	@echo "make demo         play the seeded fintech scenario through a local broker and show its escalations"
	@echo "make bench        throughput, CPU per span, latency, memory and scale-out (QUICK=1: a reduced run, under three minutes)"
	@echo "make profile      py-spy on one worker under the benchmark's traffic: wall and CPU time per stage (QUICK=1)"
	@echo "make fuzz         coverage-guided fuzzing of every decoder (FUZZ_SECONDS=60)"
	@echo "make clean        stop local brokers, remove run state and tool caches (keeps $(VENV) and jars)"

# The last line says which OTLP decoder runs (the compiled one, or pure Python where no C compiler was found).
setup: $(SETUP_STAMP)
	@$(BIN)/hotpath --version

# setup.py and the C source too: editing the compiled OTLP decoder rebuilds it.
$(SETUP_STAMP): pyproject.toml setup.py stream/ingest/formats/otlp/wire.c
	@if [ -z "$(PYTHON)" ]; then \
	  echo "make: no Python 3.11+ found (tried python3.13, python3.12, python3.11, python3); run make PYTHON=/path/to/python3.11" >&2; \
	  exit 1; fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# the build backend's warnings (an editable install, its own deprecations) are not the user's to act on
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet -e '.[test,demo,aws]'
	@touch $@

kafka-up:
	@$(or $(PYTHON),python3) deploy/kafka/launcher.py up

kafka-down:
	@$(or $(PYTHON),python3) deploy/kafka/launcher.py down

topics: setup
	$(BIN)/hotpath topics apply

test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

test-faults: setup
	$(BIN)/pytest -m faults $(PYTEST_ARGS)

test-rebalance: setup
	$(BIN)/pytest -m rebalance $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check $(LINT_PATHS)

# Stops every broker under .run (the local one and any a test session left) before removing their state.
clean:
	@for run_dir in .run/*/; do \
	  if [ -f "$$run_dir/kafka.pid" ]; then $(or $(PYTHON),python3) deploy/kafka/launcher.py down --run-dir "$$run_dir"; fi; \
	done
	rm -rf .run build dist .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

# The seeded fintech scenario through Kafka: starts a broker if none answers, plays, shows, cleans up.
.PHONY: demo
demo: setup
	$(BIN)/hotpath demo $(DEMO_ARGS)

# Coverage-guided fuzzing (atheris) of every decoder and of inspect; crashes land in .run/fuzz/.
.PHONY: fuzz
FUZZ_SECONDS ?= 60
fuzz: setup
	$(BIN)/python fuzz/fuzz_decoders.py -max_total_time=$(FUZZ_SECONDS) $(FUZZ_ARGS)

# Issue 7: throughput, latency, memory and scale-out on the local broker, one table and bench/results.json.
.PHONY: bench
bench: setup kafka-up
	$(BIN)/python -m bench.run $(if $(QUICK),--quick)

# Issue 16: where one worker's wall and CPU time go, per stage (py-spy); raw profiles land in .run/profile/.
.PHONY: profile
profile: setup kafka-up
	$(BIN)/python -m bench.profile $(if $(QUICK),--quick)
