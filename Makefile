# Every target works on a fresh machine with only Python 3.10+; each is idempotent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test run lint bench bench-datasets gpu-wheels clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The suite runs once per Keras backend: everything on TensorFlow (the default), then again on
# JAX (tests marked only_backend("tensorflow") are skipped there, and the reverse). Two pytest
# workers, one test file each at a time (module fixtures stay in one process): most tests wait
# on a subprocess or a compile, so two at once fill both cores.
TEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile
	BILSTM_BACKEND=jax $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The main job: the tutorial's two comparisons, 10 seeds each, with statistics.
run: install
	$(BIN)/bilstm compare --config configs/tutorial-directions.yaml --out runs/tutorial-directions --force
	$(BIN)/bilstm compare --config configs/tutorial-merge-modes.yaml --out runs/tutorial-merge-modes --force

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The baseline column comes from the commit before the vectorised engine, checked out beside.
BASELINE_COMMIT := d566427
bench: install
	test -d benchmarks/.baseline || git worktree add --detach benchmarks/.baseline $(BASELINE_COMMIT)
	$(BIN)/python benchmarks/run.py

# bilstm with no flags vs a plain Keras BiLSTM on small UEA/UCR datasets (fetched from the aeon
# wheel on PyPI into benchmarks/.data/); the evidence behind the dataset recipe.
bench-datasets: install
	$(BIN)/python benchmarks/datasets.py

# Wheels for benchmarks/gpu.sh on a GPU machine without network (Python $(GPU_PYTHON), x86_64):
# bilstm plus the dependencies such a machine lacks, at the versions installed here.
GPU_PYTHON ?= 3.12
GPU_WHEELS := keras|pydantic|pydantic[-_]core|annotated[-_]types|typing[-_]inspection|optree|namex|h5py
GPU_WHEELS_DIR ?= benchmarks/wheels
gpu-wheels: install
	rm -rf $(GPU_WHEELS_DIR) && mkdir -p $(GPU_WHEELS_DIR)
	$(BIN)/python -m pip wheel --quiet --no-deps -w $(GPU_WHEELS_DIR) .
	$(BIN)/python -m pip download --quiet --only-binary=:all: --no-deps --python-version $(GPU_PYTHON) \
		--platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 -d $(GPU_WHEELS_DIR) \
		$$($(BIN)/python -m pip freeze | grep -iE '^($(GPU_WHEELS))==')
	ls $(GPU_WHEELS_DIR)

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info benchmarks/results.json benchmarks/wheels gpu-results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
