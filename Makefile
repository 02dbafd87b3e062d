# The two commands of the README. Each sets the machine up first, so a clean clone needs nothing else.
PY ?= python3
export OMP_NUM_THREADS = 1

.PHONY: setup demo test bench
setup:
	./scripts/setup

demo: setup
	grade examples/submissions/* -o graded-demo -j 2 || test $$? -eq 1
	@echo "Open graded-demo/summary.html and graded-demo/<submission>/report.html in a browser."

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/bench.py
