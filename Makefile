# Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo serve worker migrate keys test test-fast bench bench-quick eval lint format clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## The main job on the embedded defaults: `make demo` or `make demo DATASET=/path/to/folder`.
demo: $(STAMP)
	$(PY) -m analysis_service.demo $(if $(DATASET),--dataset "$(DATASET)")

## Everything in the foreground: Postgres (embedded unless DATABASE_URL), migrations,
## caption service, analysis API, one worker. Ctrl-C stops all of it.
serve: $(STAMP)
	$(PY) -m analysis_service.launcher

## One more worker on the same database (embedded or not).
worker: $(STAMP)
	$(PY) -m analysis_service.worker

migrate: $(STAMP)
	$(PY) -m analysis_service.migrate

## API keys of the analysis API: make keys ARGS="create --name ci [--read-only]", ARGS=list,
## ARGS="revoke ci". A created key is printed once.
keys: $(STAMP)
	$(PY) -m analysis_service.auth keys $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

## The engine tests against the real vLLM (the `gpu` extra), in a virtualenv of their own
## under GPU_VENV_HOME, keyed by a hash of the pins: ~11 GB and minutes to build the first
## time (pip chooses, uv installs), seconds afterwards. No GPU or model weights needed.
## VLLM_TESTS=tests runs everything.
GPU_VENV_HOME ?= $(HOME)/.cache/subpop
VLLM_TESTS ?= tests/test_vllm_real_api.py tests/test_vllm_engine.py
.PHONY: gpu-venv test-vllm

gpu-venv: $(STAMP)
	$(PY) .ci/gpu_venv.py --home "$(GPU_VENV_HOME)"

## Bytecode is written on the first run, for what the tests import (the build compiles none).
test-vllm: $(STAMP)
	venv=$$($(PY) .ci/gpu_venv.py --home "$(GPU_VENV_HOME)") && \
	  env -u PYTHONDONTWRITEBYTECODE REQUIRE_VLLM=1 "$$venv/bin/python" -m pytest -q $(VLLM_TESTS)

bench: $(STAMP)
	$(PY) -m benchmarks.run

## The same at 3,000 images, without the discovery cost (which does not vary): minutes, not tens.
bench-quick: $(STAMP)
	BENCH_QUICK=1 $(PY) -m benchmarks.run

## Discovery scored against ground truth on ../shared/data/ssdllm-captions.
eval: $(STAMP)
	$(PY) -m benchmarks.eval

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
