# Every target works on a fresh machine with only Python 3.10+; each is idempotent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test run lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The suite runs once per Keras backend: everything on TensorFlow (the default), then again on
# JAX (tests marked only_backend("tensorflow") are skipped there, and the reverse).
test: install
	$(BIN)/python -m pytest -q
	BILSTM_BACKEND=jax $(BIN)/python -m pytest -q

# The main job: the tutorial's two comparisons, 10 seeds each, with statistics.
run: install
	$(BIN)/bilstm compare --config configs/tutorial-directions.yaml --out runs/tutorial-directions --force
	$(BIN)/bilstm compare --config configs/tutorial-merge-modes.yaml --out runs/tutorial-merge-modes --force

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info benchmarks/results.json
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
