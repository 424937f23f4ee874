# Bootstraps .venv on a fresh machine, then runs the demo, the tests or the benchmarks.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
SOCREC := $(VENV)/bin/socrec
STAMP  := $(VENV)/.installed
KAFKA_VERSION := $(shell sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' kafka/pom.xml)
KAFKA_STAMP   := kafka/libs/.kafka-$(KAFKA_VERSION)
DEMO_ARGS ?=
BENCH_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint typecheck bench-quality bench-throughput clean ops-tools kafka

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Apache Kafka (the pinned broker of kafka/pom.xml and its runtime jars) from Maven Central, once.
$(KAFKA_STAMP): kafka/pom.xml
	@command -v java >/dev/null || { echo "make: Apache Kafka needs Java 17+ (apt-get install openjdk-17-jre-headless), or set SOCREC_BROKER=embedded" >&2; exit 1; }
	@command -v mvn >/dev/null || { echo "make: fetching Apache Kafka needs Maven (apt-get install maven), or set SOCREC_BROKER=embedded" >&2; exit 1; }
	rm -rf kafka/libs.partial
	mvn -q -B -f kafka/pom.xml dependency:copy-dependencies -DoutputDirectory=libs.partial -DincludeScope=runtime
	touch kafka/libs.partial/.kafka-$(KAFKA_VERSION)
	rm -rf kafka/libs && mv kafka/libs.partial kafka/libs

kafka: $(KAFKA_STAMP)

demo: $(STAMP) $(KAFKA_STAMP)
	$(SOCREC) demo $(DEMO_ARGS)

test: $(STAMP) $(KAFKA_STAMP) ops-tools
	$(VENV)/bin/ruff check socrec_online streams benchmarks tests
	$(VENV)/bin/mypy
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" tests/unit $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check socrec_online streams benchmarks tests

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench-quality: $(STAMP)
	$(SOCREC) bench quality --dataset lastfm --protocol recbole --out out/quality_lastfm.json $(BENCH_ARGS)

bench-throughput: $(STAMP) $(KAFKA_STAMP)
	$(SOCREC) bench throughput --out out/throughput.json $(BENCH_ARGS)

# Debian's packages for the ops tests: prometheus (promtool: alert rule tests; prometheus: the dashboard
# test) and docker-compose (`config` checks docker/compose.yaml; no Docker engine needed).
ops-tools:
	@if [ ! -x /usr/bin/promtool ] || [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/docker-compose ]; then \
	  if [ "$$(id -u)" -ne 0 ]; then echo "make: installing the ops tools needs root: sudo apt-get install prometheus docker-compose" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus docker-compose; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache runs snapshots out kafka/libs kafka/libs.partial
