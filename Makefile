# Two commands for a newcomer: `make run` (the whole pipeline on the embedded stack) and
# `make test` (the test suite). Both create .venv and install pinned dependencies first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_DIR ?= .data

.PHONY: setup run test bench bench-full clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --constraint constraints.txt --editable '.[test]'
	touch $@

run: setup
	$(VENV)/bin/plugin-server dev --data-dir $(DATA_DIR)

test: setup
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
