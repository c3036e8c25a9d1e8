# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# the CPU build of PyTorch first, so nothing below can pull a CUDA build
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e ".[dev,gbdt,ann,serve]"
	# headless Chromium for the web page's browser test (skipped when missing)
	command -v chromium >/dev/null || (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium chromium-driver) || true
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/recfunnel demo

test: $(STAMP)
	$(BIN)/python -m pytest

typecheck: $(STAMP)
	$(BIN)/mypy

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) artifacts runs .pytest_cache
