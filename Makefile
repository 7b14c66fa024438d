# Quick start: `make demo` (set up + curate the sample data), `make test` (set up + run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ftdata-installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt plugins/ftdata-openai/pyproject.toml plugins/ftdata-lora/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch (asked for by trl/peft/accelerate) pulls GBs of CUDA wheels.
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[local,openai,test]' -e plugins/ftdata-openai -e plugins/ftdata-lora
	touch $(STAMP)

demo: setup
	bash scripts/demo.sh

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/bench_curate.py --rows 100000 --compare-naive

clean:
	rm -rf $(VENV) datasets .pytest_cache
