# slotgraph: `make serve` and `make test` are the two commands a newcomer needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Timekit's real npm packages for tests/compat (pinned by its lock file); skipped without npm.
COMPAT := tests/compat/node_modules/.installed

.PHONY: serve test lint install bench clean docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(COMPAT): tests/compat/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix tests/compat --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm is not installed: the Timekit compatibility tests will be skipped"; fi

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/slotgraph serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src

test: lint $(COMPAT)
	$(BIN)/python -m slotgraph.docgen --check
	$(BIN)/pytest -q

docs: $(STAMP)
	$(BIN)/python -m slotgraph.docgen

# Needs PostgreSQL and wrk (apt-get install wrk); see docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python -m bench all

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache tests/compat/node_modules
