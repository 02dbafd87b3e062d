# The two commands of the README (`make demo`, `make test`), plus the habits: `make lint`, `make fast`.
# Every target runs from the project's virtual environment .venv, which `scripts/setup` makes (and
# leaves alone when nothing changed), so a stock Debian's own python3 works (PEP 668).
VENV ?= .venv
PY := $(VENV)/bin/python
export OMP_NUM_THREADS = 1

.PHONY: setup demo test fast lint bench
setup:
	./scripts/setup

demo: setup
	$(VENV)/bin/grade examples/submissions/* -o graded-demo -j 2 || test $$? -eq 1
	@echo "Open graded-demo/summary.html and graded-demo/<submission>/report.html in a browser."

# The whole suite: fast unit tests and the slow ones that start kernels, train models or a browser.
# Two test processes (pytest-xdist): the slow tests mostly wait on kernels' timeouts, and every
# test holds on a loaded machine, so the second core halves the wall time. --dist loadgroup hands
# out one test at a time (the longest first, tests/conftest.py) and keeps the tests that share one
# graded batch (xdist_group "batch_of_three") in one process, so it is graded once.
test: setup
	$(PY) -m pytest -q -n 2 --dist loadgroup

# Unit tests only (no kernel, no training, no browser): under a minute.
fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy

# Real work (training at the rubric's recall settings, 12 submissions; ~10 minutes on 2 quiet
# cores): `make bench`. Quick, with train_recall stubbed: `make bench BENCH=--stub`. Add
# `--cluster` to measure `--cluster local:2` against `-j 2` in the same run.
BENCH ?=
bench: setup
	$(PY) benchmarks/bench.py $(BENCH)
