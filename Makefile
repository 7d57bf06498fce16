# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_PIN := torch==2.13.0

.PHONY: demo test install install-test system-deps bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# The pinned CPU build first, so nothing later pulls a CUDA torch.
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q -e ".[onnx,serve,db]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e ".[onnx,serve,db,dev]"
	touch $@

# Debian's Chromium and its driver for the browser test of the web page, and PostgreSQL for the inspection log's
# tests (each skipped with a reason if absent).
system-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  ( (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
	    || echo "warning: could not install chromium/chromium-driver; the browser test will be skipped" )
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  ( (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) \
	    || echo "warning: could not install postgresql; the inspection log's PostgreSQL tests will be skipped" )

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(VENV)/bin/steelinspect demo --out runs/demo

# One worker process per core (pytest-xdist); the slowest 15 tests are printed at the end.
# `make test PYTEST_ARGS="-m 'not slow'"` runs the quick ones only; PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= auto
PYTEST_ARGS ?=
test: install-test system-deps
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --durations=15 $(PYTEST_ARGS)

bench: install
	$(PY) bench/rle.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info .pytest_cache
