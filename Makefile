# The two commands of the README: `make run` (the main job) and `make test` (what CI runs:
# every test but the `slow` ones). `make test-all` runs the slow ones too.
# All set up .venv first; the setup is redone only when pyproject.toml changes.
VENV ?= .venv
PY := $(VENV)/bin/python
MODEL ?= googlenet
BATCH ?= 8

.PHONY: setup run test test-all

setup: $(VENV)/.installed

# torch is pinned to the CPU build first: a bare `torch` requirement would pull a multi-GB
# CUDA build, and the CPU build is all fastcnn needs without a GPU.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,bench,ray]'
	touch $@

# The main job: the model's per-layer table, then the whole road on this machine (export to
# ONNX, import, run a batch on the default backend, latency and agreement with PyTorch).
run: setup
	$(VENV)/bin/fastcnn summary $(MODEL)
	$(VENV)/bin/fastcnn run $(MODEL) --batch $(BATCH)

test: setup
	$(PY) -m pytest -q -m "not slow"

test-all: setup
	$(PY) -m pytest -q
