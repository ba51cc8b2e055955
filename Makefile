# The front door. `make install` once, then `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: install demo kafka-jars registry-app test test-unit lint bench bench-web chaos clean schemas-check fuzz tamper

# Python only: no Java, no database server. The embedded default needs nothing else.
install: $(VENV)/.installed

demo: install
	$(VENV)/bin/countersign demo

# The local schema registry (Apicurio, Java 17) for the registry tests; their fixture fetches it too.
registry-app: install
	$(PY) -c "from countersign.local_registry import ensure_registry; print('registry in', ensure_registry())"

# The local broker's jars (Java 17 + Maven); `countersign kafka up` and the tests fetch them too.
kafka-jars: install
	$(PY) -c "from countersign.local_kafka import ensure_jars; print('kafka jars in', ensure_jars())"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# Everything: unit, contract and integration tiers (starts a real Kafka broker and PostgreSQL).
test:
	$(PY) -m pytest -q

test-unit:
	$(PY) -m pytest -q tests/unit

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(MAKE) --no-print-directory schemas-check

# Every schema change must keep every released schema readable (docs/schemas.md).
schemas-check:
	$(PY) -m countersign.schemas_check

# The codec fuzz test's long form (its short form runs in `make test`).
FUZZ_EXAMPLES ?= 20000
fuzz:
	COUNTERSIGN_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q tests/unit/test_codec_fuzz.py

bench:
	$(PY) bench/skeleton.py

# Countersign beside LangGraph on one machine (docs/peers.md): installs the optional `peers`
# extra (LangGraph, its PostgreSQL checkpointer, psycopg) first. PEERS_ARGS="--help" lists flags.
.PHONY: bench-peers
PEERS_ARGS ?=
bench-peers: install
	$(PY) -m pip install -q -e ".[dev,peers]"
	$(PY) -m bench.peers $(PEERS_ARGS)

# The web inbox and the notifier: decision round trip, inbox with 10,000 open, notifications/s.
bench-web:
	$(PY) bench/web.py

# The fault-injection suite's long form (its short form runs in `make test`): kill -9, churn,
# zombie, broker crash, racing decisions, poison; figures printed and appended to
# $(CHAOS_REPORT). Replay one with COUNTERSIGN_CHAOS_SEED=<seed printed>.
CHAOS_RUNS   ?= 1000
CHAOS_REPORT ?= .countersign/chaos-report.jsonl
chaos:
	mkdir -p $(dir $(CHAOS_REPORT))
	COUNTERSIGN_CHAOS_RUNS=$(CHAOS_RUNS) COUNTERSIGN_CHAOS_REPORT=$(CHAOS_REPORT) \
		$(PY) -m pytest -q tests/faults

# The tamper suite's long form (a seeded sample runs in `make test`): an insider doctors the
# log (re-chaining what they rewrite) TAMPER_TRIALS times, and TAMPER_CLEAN clean histories
# are verified; `verify` must catch every doctored one and alarm on no clean one.
TAMPER_TRIALS ?= 1000
TAMPER_CLEAN  ?= 1000
tamper:
	COUNTERSIGN_TAMPER_TRIALS=$(TAMPER_TRIALS) COUNTERSIGN_TAMPER_CLEAN=$(TAMPER_CLEAN) \
		$(PY) -m pytest -q tests/unit/test_tamper.py tests/integration/test_tamper_postgres.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
