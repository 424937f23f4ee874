# Bootstraps .venv on a fresh machine, then runs the demo, the tests or the benchmarks.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
SOCREC := $(VENV)/bin/socrec
STAMP  := $(VENV)/.installed
DEMO_ARGS ?=
BENCH_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint typecheck bench-quality bench-throughput clean ops-tools

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(SOCREC) demo $(DEMO_ARGS)

test: $(STAMP) ops-tools
	$(VENV)/bin/ruff check socrec_online streams tests
	$(VENV)/bin/mypy
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" tests/unit $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check socrec_online streams tests

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench-quality: $(STAMP)
	$(SOCREC) bench quality --dataset lastfm --protocol recbole --out out/quality_lastfm.json $(BENCH_ARGS)

bench-throughput: $(STAMP)
	$(SOCREC) bench throughput --out out/throughput.json $(BENCH_ARGS)

# Debian's packages for the ops tests: prometheus (promtool: alert rule tests; prometheus: the dashboard
# test) and docker-compose (`config` checks docker/compose.yaml; no Docker engine needed).
ops-tools:
	@if [ ! -x /usr/bin/promtool ] || [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/docker-compose ]; then \
	  if [ "$$(id -u)" -ne 0 ]; then echo "make: installing the ops tools needs root: sudo apt-get install prometheus docker-compose" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus docker-compose; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache runs snapshots out
