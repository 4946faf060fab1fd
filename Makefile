# Two commands matter: `make serve` (set up everything and run the server) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PORT   ?= 8000
BIN    := $(VENV)/bin
DEFAULT_MODELS := faster-whisper-tiny.en faster-whisper-base

.PHONY: serve test install models browser lint typecheck unit integration load-test bench bench-burst clean

# Fresh clone -> venv, project installed, default models in models/, server on $(PORT);
# `theo serve` prints the web page's address (http://localhost:$(PORT)/) once it is ready.
serve: models
	$(BIN)/theo serve --host 0.0.0.0 --port $(PORT)

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

# Chromium and its driver for the browser tests (tests/integration/test_web.py), and Node
# with npm for the Node SDK tests (test_streaming.py), from apt (Debian; as root or through
# sudo). Does nothing when all are there; CI runs it first.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && command -v npm >/dev/null; \
		then exit 0; fi; \
	sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$sudo apt-get update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		chromium chromium-driver $$(command -v npm >/dev/null || echo nodejs npm)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q tests/unit

integration: models
	$(BIN)/pytest -q tests/integration

# The full load test (16 clients x 500 requests, ~8000 in all); `make test` runs a shorter one.
load-test: models
	THEO_LOAD_REQUESTS_PER_CLIENT=500 $(BIN)/pytest -q -s tests/integration/test_load.py

# Server vs raw engine on real clips from ../shared/eval; writes bench/results/latest.md.
bench: models
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Bursts of 64/128/256 requests through the SDK vs the same work at c=8, and queue fairness
# with a long file; writes bench/results/burst.md (BENCH_ARGS="--models A B --sizes 64").
bench-burst: models
	$(BIN)/python -m bench.burst $(BENCH_ARGS)

# Long recordings: the server vs WhisperModel.transcribe and BatchedInferencePipeline (8, 16)
# on the eval set's long files and chains built from its clips: WER, wall time, timestamp
# error, words in silence, 4 files at once with short requests; writes bench/results/long.md
# (BENCH_ARGS="--models faster-whisper-tiny.en --recordings lj_chapter").
.PHONY: bench-long
bench-long: models
	$(BIN)/python -m bench.long $(BENCH_ARGS)

# A 3-hour speech upload (Opus, ~16 MB): the API service's memory over the request and the
# transcript against the same audio cut small; writes bench/results/memory.md.
.PHONY: bench-memory
bench-memory: models
	$(BIN)/python -m bench.memory $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache

# --- Deploy (docs/deploy.md) --------------------------------------------------------------
# Bentos go to the BentoML store ($BENTOML_HOME, default ~/bentoml); images need Docker.
IMPORT_ARGS ?=

.PHONY: bento bento-models bento-bundled bento-gpu image image-bundled image-gpu k8s deploy-check

# Slim bento `theo`: code only; the models come from $THEO_MODELS_DIR (a volume) at run time.
bento: install
	$(BIN)/bentoml build

# Import models/<name> into the BentoML model store (IMPORT_ARGS="--device cuda ..." for GPUs).
bento-models: models
	$(BIN)/python scripts/import_models.py $(IMPORT_ARGS)

# Bundled bento `theo-bundled`: the same code with the weights packaged from the model store.
bento-bundled: bento-models
	$(BIN)/bentoml build --name theo-bundled --arg model_source=store

# CUDA variant of the slim bento (models need `device: cuda` in their theo.yaml).
bento-gpu: install
	$(BIN)/bentoml build -f deploy/bentofile.gpu.yaml

image: bento
	scripts/containerize.sh theo:latest theo:latest

image-bundled: bento-bundled
	scripts/containerize.sh theo-bundled:latest theo-bundled:latest

image-gpu: bento-gpu
	scripts/containerize.sh theo-gpu:latest theo-gpu:latest

# Regenerate the Kubernetes manifests from the models' theo.yaml.
k8s: install
	$(BIN)/python -m theo.deploy.kubernetes --image theo:latest > deploy/kubernetes/theo.yaml
	$(BIN)/python -m theo.deploy.kubernetes --image theo-bundled:latest --bundled \
		> deploy/kubernetes/theo-bundled.yaml

# Validate the shipped bentofiles, BentoCloud config and Kubernetes manifests.
deploy-check: install
	$(BIN)/pytest -q tests/unit/test_deploy_bento.py tests/unit/test_deploy_config.py

# Live transcription: 1/4/8/16 realtime sessions streaming eval clips at real-time pace, with
# and without partial text and batching, and beside 4 long files; writes bench/results/live.md
# (BENCH_ARGS="--models faster-whisper-tiny.en faster-whisper-base --sessions 8").
.PHONY: bench-live
bench-live: models
	$(BIN)/python -m bench.live $(BENCH_ARGS)

# Streaming vs not: time to the first delta and to done for a 231 s recording at c=1 and 4,
# both models, and the runner CPU a client that leaves saves; writes bench/results/stream.md
# (BENCH_ARGS="--models faster-whisper-tiny.en --rounds 5").
.PHONY: bench-stream
bench-stream: models
	$(BIN)/python -m bench.stream $(BENCH_ARGS)
