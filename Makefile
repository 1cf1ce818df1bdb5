# slotgraph: `make serve` and `make test` are the two commands a newcomer needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# npm packages the tests run, each folder pinned by its lock file; skipped without npm:
# Timekit's real SDK and widget (tests/compat), axe-core for the accessibility checks (tests/browser).
NPM_TESTS := tests/compat/node_modules/.installed tests/browser/node_modules/.installed

.PHONY: serve test test-quick lint install bench clean docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

tests/%/node_modules/.installed: tests/%/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix tests/$* --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm is not installed: the tests that need tests/$*'s npm packages will be skipped"; fi

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/slotgraph serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src

# Both loops spread the tests over every core (pytest-xdist; each module's tests stay together on
# one worker, tests/conftest.py). `pytest -p no:xdist ...` runs them in one process.
XDIST := -n auto

# Every test process imports src/ afresh (server, worker and CLI processes: a few hundred a run),
# and where PYTHONDONTWRITEBYTECODE is set (as on the CI machine) each compiled all of src/ again:
# about 10 % of an import's CPU (docs/testing.md). compileall writes the bytecode once; Python
# still reads it with the variable set.
test: lint $(NPM_TESTS)
	$(BIN)/python -m compileall -q -x node_modules src tests
	$(BIN)/python -m slotgraph.docgen --check
	$(BIN)/pytest -q $(XDIST)

# The local loop while editing: everything in-process on both backends, without the tests that
# start server processes, chromium or Node, and without the few slow property tests (markers in
# pyproject.toml; docs/testing.md). `make test` and CI still run everything.
QUICK := not slow and not system and not npm and not browser
test-quick: $(STAMP)
	$(BIN)/pytest -q $(XDIST) -m "$(QUICK)"

docs: $(STAMP)
	$(BIN)/python -m slotgraph.docgen

# Needs PostgreSQL and wrk (apt-get install wrk); see docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python -m bench all

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache tests/compat/node_modules tests/browser/node_modules
