# xfed: everything a fresh machine with Python 3.11 needs is installed from here.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint unit bench chromium clean help

help:
	@echo "make demo   - set up and run the default tour"
	@echo "make test   - set up, lint and run the whole test suite"
	@echo "make lint   - ruff + mypy"
	@echo "make bench  - run the benchmarks (prints figures)"
	@echo "make chromium - install Debian's Chromium (the report screenshot test uses it)"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,plot]'
	@command -v openssl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq openssl; }
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/xfed demo

lint: $(STAMP)
	$(BIN)/ruff check federation chaos tests
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m chaos.bench

# The report test takes a headless-browser screenshot of report.html; without Chromium it
# skips with a message. Debian's package, as root (CI runs as root).
chromium:
	command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }

clean:
	rm -rf $(VENV) .xfed .pytest_cache .mypy_cache .ruff_cache
