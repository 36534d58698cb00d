# Two commands on a fresh machine: `make demo` and `make test`. Both set everything up first.
VENV    := .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
# The CPU build of torch for this machine; CUDA users install their own torch first (see README).
TORCH   ?= torch==2.13.0

.PHONY: setup demo test test-fast tiny-models bench clean

$(STAMP): pyproject.toml scripts/setup_system.sh
	bash scripts/setup_system.sh
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet "$(TORCH)"
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	bash scripts/demo.sh

test: setup
	$(PYTHON) -m pytest

test-fast: setup
	$(PYTHON) -m pytest -m "not slow"

tiny-models: setup
	$(PYTHON) scripts/make_tiny_models.py build/tiny-models

bench: setup
	$(PYTHON) scripts/bench_pipeline.py

clean:
	rm -rf $(VENV) build demo_output
