# The two commands of the README: `make demo` and `make test`. Both install first.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint typecheck unit install tools clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(INSTALLED)

demo: install
	$(BIN)/modelplane plan dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy modelplane components workloads policies stacks tests benchmarks

unit: install
	$(BIN)/pytest

test: lint typecheck unit

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
