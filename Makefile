# Set-up is two commands: `make run` and `make test`. Every target creates the venv it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test test-quick check format bench reliability clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	$(BIN)/monitor run

check: $(STAMP)
	$(BIN)/ruff check monitor tests bench fuzz
	$(BIN)/ruff format --check monitor tests bench fuzz
	$(BIN)/mypy monitor

test: check
	$(BIN)/pytest -q

# The quick loop while editing: everything but the slow end-to-end tests.
test-quick: $(STAMP)
	$(BIN)/pytest -q -m 'not slow' -x

format: $(STAMP)
	$(BIN)/ruff format monitor tests bench fuzz
	$(BIN)/ruff check --fix monitor tests bench fuzz

bench: $(STAMP)
	$(BIN)/python -m bench

# docs/reliability.md from the hostile-feed, crash and outage tests' observations
reliability: $(STAMP)
	$(BIN)/python -m bench.reliability

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
