# CloudBuffer — the two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# `make run BIND=0.0.0.0:8080` listens there instead of hypercorn.toml's bind.
BIND   ?=

.PHONY: run test test-deps bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml client/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e . -e ./client
	touch $@

$(TEST_STAMP): pyproject.toml client/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' -e ./client
	touch $(STAMP) $@

run: $(STAMP)
	$(BIN)/cloudbuffer serve $(if $(BIND),--bind $(BIND),)

# The system packages come first (python3-venv among them, before .venv is made).
test: test-deps $(TEST_STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test-deps:
	@tools/setup-test-deps

bench: $(TEST_STAMP)
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache test-output
