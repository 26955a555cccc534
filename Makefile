# One-command set-up: every target that needs Python builds .venv first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST  := $(BIN)/python -m pytest

.PHONY: run test bench demo clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tickbook demo

test: $(STAMP)
	$(PYTEST) -q

bench: $(STAMP)
	$(PYTEST) benchmarks -q --benchmark-enable -s

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
