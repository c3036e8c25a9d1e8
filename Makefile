# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# two installs: the demo needs the project and its serving extra only; the tests need the rest too
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint typecheck install install-demo clean

$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# the CPU build of PyTorch first, so nothing below can pull a CUDA build
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e ".[serve]"
	touch $(DEMO_STAMP)

$(TEST_STAMP): $(DEMO_STAMP)
	# test and lint tools, and the optional backends the tests cover (LightGBM, faiss)
	$(BIN)/pip install -e ".[dev,gbdt,ann,serve]"
	# headless Chromium for the web page's browser test (skipped when missing)
	command -v chromium >/dev/null || (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium chromium-driver) || true
	touch $(TEST_STAMP)

install-demo: $(DEMO_STAMP)

install: $(TEST_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/recfunnel demo

test: $(TEST_STAMP)
	$(BIN)/python -m pytest

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) artifacts runs .pytest_cache
