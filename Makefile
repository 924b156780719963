# eve-horizon — the two commands a newcomer needs: `make up` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: up test chaos bench venv lint clean

venv: $(STAMP)

# (Re)install when pyproject.toml changes; the stamp keeps repeat runs instant.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

## up: start the platform on the embedded PostgreSQL (data in ./.eve); Ctrl+C stops it
up: $(STAMP)
	$(BIN)/eve up --data-dir .eve

## test: the whole suite (unit, integration on a real PostgreSQL, e2e with the real Claude Code CLI)
test: $(STAMP)
	$(BIN)/python -m pytest

## chaos: kill -9 workers, the API and PostgreSQL at random under load for EVE_CHAOS_ROUNDS rounds (default 100)
EVE_CHAOS_ROUNDS ?= 100
chaos: $(STAMP)
	EVE_CHAOS_ROUNDS=$(EVE_CHAOS_ROUNDS) $(BIN)/python -m pytest tests/chaos -m chaos -s -p no:cacheprovider -o timeout=0

## bench: queue/worker/API benchmarks against procrastinate and pgqueuer; prints tables, writes bench-results/
bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache bench-results
