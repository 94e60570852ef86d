# The two set-up commands of the README. Each creates the virtual environment when it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test test-all lint bench install clean

# torch==2.13.0 is in requirements.txt and installed in the SAME pip step: any other torch spec can pull
# a multi-GB CUDA build.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt pytest ruff
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  ## build the embedded task, train ParetoHqD and RiC, evaluate both, write the report
	OMP_NUM_THREADS=1 $(BIN)/moalign demo

test: $(STAMP)  ## the default test suite (slow end-to-end runs excluded)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m pip install -q pymoo==0.6.2 paretoset==1.2.5
	$(BIN)/python benchmarks/pareto.py
	$(BIN)/python benchmarks/mo_dpo.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/panacea.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/mod_decoding.py

clean:
	rm -rf $(VENV) .pytest_cache runs
