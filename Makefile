# The two commands of the README: `make demo` and `make test`. Both install first.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
INSTALLED := $(VENV)/.installed

SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint typecheck unit install tools kserve-venv clean policy-pack

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# promtool, Prometheus and Alertmanager from Debian's packages; their services are never started.
tools:
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null \
	    || ! { command -v prometheus-alertmanager || command -v alertmanager; } >/dev/null; then \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager >/dev/null; \
	fi

install: $(INSTALLED) tools

# The offline plan of the dev platform, then dev's training job and service run locally, once.
demo: install
	$(BIN)/modelplane plan dev
	$(BIN)/modelplane up local --once

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy modelplane stacks tests benchmarks
	cd examples/team_platform && ../../$(BIN)/mypy --config-file ../../pyproject.toml __main__.py

unit: install
	$(BIN)/pytest

test: lint typecheck unit

# The policy pack as a directory of its own, for `pulumi policy publish build/policy-pack`.
policy-pack: $(INSTALLED)
	$(BIN)/python -m modelplane.policy_pack build/policy-pack

# KServe's model server, the peer benchmarks.serving runs by default: a venv of its own (its pins are not
# ours) that sees this one's packages after its own, so it installs only what KServe adds.
KSERVE_VENV := build/kserve-venv
kserve-venv: $(KSERVE_VENV)/.installed

$(KSERVE_VENV)/.installed: benchmarks/kserve-requirements.txt $(INSTALLED)
	rm -rf $(KSERVE_VENV)
	$(BIN)/python -m venv $(KSERVE_VENV)
	echo "import site; site.addsitedir('$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')')" \
	  > "$$($(KSERVE_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/modelplane-venv.pth"
	$(KSERVE_VENV)/bin/pip install --quiet -r benchmarks/kserve-requirements.txt
	touch $@

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
