# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-slow install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml setup.py
	$(BIN)/python -m pip install --quiet -e ".[tf,test]"
	touch $(STAMP)

install: $(STAMP)

DEMO_DIR := demo_output

demo: $(STAMP)
	$(BIN)/edgecnn info mobilenet --alpha 0.75
	mkdir -p $(DEMO_DIR)
	$(BIN)/edgecnn convert mobilenet --alpha 0.75 --int8 -o $(DEMO_DIR)/mobilenet_0.75_224_int8.tflite

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache $(DEMO_DIR)
