# `make demo` and `make test` work on a fresh machine with only Python 3.11.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test ledger bench clean

setup: $(STAMP)

# torch is pinned and installed first so that nothing resolves a CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lifelong run

# One BLAS/OpenMP thread per process: the suite starts servers and Ray workers beside itself, and
# oversubscribed OpenMP threads spin-wait, which slows small tensor ops by orders of magnitude.
test: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest

# The full ledger tier and the speed benchmarks; figures go to BENCHMARKS.md by hand, with the machine.
bench: $(STAMP)
	$(BIN)/lifelong ledger check ledger --tier full --record
	$(BIN)/python benchmarks/overhead.py

ledger: $(STAMP)
	$(BIN)/lifelong ledger check ledger --tier fast

clean:
	rm -rf $(VENV) runs .pytest_cache
