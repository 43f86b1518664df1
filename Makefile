# Two commands: `make demo` and `make test`. Both build (or reuse) .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU wheel of torch is on local disk on our machines; an unpinned torch
# would pull a multi-GB CUDA build, so torch is installed first, pinned.
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg
# The fits are many small problems: BLAS threads only contend for the cores.
export OPENBLAS_NUM_THREADS := 1

.PHONY: demo test venv clean

$(VENV)/.core: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e .
	touch $@

$(VENV)/.full: $(VENV)/.core
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -c constraints.txt -e ".[measure,test]"
	touch $@

venv: $(VENV)/.full

# The main job on shipped data: check the measured runs, recommend a teacher for a 1.3B student
# by both published laws side by side, weigh them against the published evidence, and draw the
# MiniMA Pareto frontier into out/.
demo: $(VENV)/.core
	$(VENV)/bin/capgap runs validate data/runs/shakespeare-study.jsonl data/runs/shakespeare-ladder.jsonl
	$(VENV)/bin/capgap recommend --student 1.3B --ladder pythia --available-teacher 12B --budget 1e21
	$(VENV)/bin/capgap evidence
	mkdir -p out
	$(VENV)/bin/capgap pareto data/reference/minima_family_benchmarks.csv --out out/minima_frontier.png

# The wheel check first: build it, install it into a virtualenv of core dependencies only
# (.venv/smoke, made once) and use it from outside the checkout (.ci/wheel_smoke).
test: $(VENV)/.full
	# The layers run one way (docs/architecture.md): import-linter's contract in pyproject.toml.
	$(VENV)/bin/lint-imports --no-cache
	TORCH_SPEC="$(TORCH_SPEC)" .ci/wheel_smoke $(PY)
	$(PY) -m pytest
	# The fit-refit tests again with two BLAS and OpenMP threads instead of one: a fit whose answer
	# depends on the machine's threading (summation order) fails here, not only on someone else's machine.
	OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 $(PY) -m pytest -q -p no:cacheprovider tests/test_laws_curve.py -k refit

clean:
	rm -rf $(VENV)
