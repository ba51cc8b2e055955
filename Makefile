# The front door. `make install` once, then `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: install test test-unit lint bench chaos clean

install: $(VENV)/.installed
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

bench:
	$(PY) bench/skeleton.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
