# Two commands matter: `make serve` (set up everything and run the server) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PORT   ?= 8000
BIN    := $(VENV)/bin
DEFAULT_MODELS := faster-whisper-tiny.en faster-whisper-base

.PHONY: serve test install models lint typecheck unit integration bench clean

# Fresh clone -> venv, project installed, default models in models/, server on $(PORT).
serve: models
	$(BIN)/bentoml serve service:Theo --host 0.0.0.0 --port $(PORT)

# Lint, format check, types, then every test (unit + integration against a real server).
test: models lint typecheck
	$(BIN)/pytest -q

install: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Theo needs Python 3.11+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# `theo pull` is a no-op for models already installed, so a second run reuses them.
models: install
	$(BIN)/theo pull $(DEFAULT_MODELS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q tests/unit

integration: models
	$(BIN)/pytest -q tests/integration

# Server vs raw engine on real clips from ../shared/eval; writes bench/results/latest.md.
bench: models
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
