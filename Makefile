# The two commands of the README: `make run` (the main job) and `make test`.
# Both set up .venv first; the setup is redone only when pyproject.toml changes.
VENV ?= .venv
PY := $(VENV)/bin/python
MODEL ?= googlenet

.PHONY: setup run test

setup: $(VENV)/.installed

# torch is pinned to the CPU build first: a bare `torch` requirement would pull a multi-GB
# CUDA build, and the CPU build is all fastcnn needs without a GPU.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: setup
	$(VENV)/bin/fastcnn summary $(MODEL)

test: setup
	$(PY) -m pytest -q
