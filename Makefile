# Quick start:  make demo   (sets everything up, runs the demo)
#               make test   (runs the test suite)
#               make lint   (ruff check, ruff format --check, mypy on the package)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[cnn,s1,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/trackoff demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ncc.py
	$(BIN)/python benchmarks/bench_cnn.py
	$(BIN)/python benchmarks/bench_memory.py
	$(BIN)/python benchmarks/bench_scene.py

lint: $(STAMP)
	$(BIN)/ruff check trackoff_xr tests benchmarks examples
	$(BIN)/ruff format --check trackoff_xr tests benchmarks examples
	$(BIN)/mypy

clean:
	rm -rf $(VENV) demo_output build *.egg-info
