# Two commands for a newcomer: `make run` (the whole pipeline on the embedded stack) and
# `make test` (the test suite). Both create .venv and install pinned dependencies first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_DIR ?= .data

.PHONY: setup run check test bench bench-full clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --constraint constraints.txt --editable '.[test]'
	touch $@

run: setup
	$(VENV)/bin/plugin-server dev --data-dir $(DATA_DIR)

# The gate before the tests: lint and format (ruff), the import layers and no import cycles
# (import-linter, contracts in pyproject.toml), and types (mypy).
check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

test: check
	$(PY) -m pytest

# Every benchmark scenario, smaller (~10 minutes on 2 cores); results in benchmarks/results/.
bench: setup
	$(PY) -m pip install --quiet --constraint constraints.txt --editable '.[test,bench]'
	$(PY) -m benchmarks run --quick

bench-full: setup
	$(PY) -m pip install --quiet --constraint constraints.txt --editable '.[test,bench]'
	$(PY) -m benchmarks run

clean:
	rm -rf $(VENV) $(DATA_DIR) .pytest_cache
