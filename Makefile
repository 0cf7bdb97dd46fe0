# Every target does its own set-up: a fresh machine needs only python3, pip and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all demo test lint typecheck pytest bench mutation clean lock

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python requirements.lock pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/portmargin demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Mutation testing of the margin core ([tool.mutmut] in pyproject.toml, docs/mutation.md):
# hours on two cores; MUTANTS='portmargin.models.tims*' runs a subset.
MUTMUT  := mutmut==3.8.1
MUTANTS ?=
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet $(MUTMUT)
	$(BIN)/mutmut run $(MUTANTS) || true
	$(BIN)/mutmut export-cicd-stats
	$(BIN)/python -c "import json; s = json.load(open('mutants/mutmut-cicd-stats.json')); t = s['killed'] + s['timeout'] + s['survived']; print(s); print('score %.1f %% of %d mutants with tests' % (100 * (s['killed'] + s['timeout']) / max(t, 1), t))"

lock: $(BIN)/python
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --strip-extras --extra dev --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .pytest_cache .ruff_cache mutants
