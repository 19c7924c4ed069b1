#!/usr/bin/env bash
# bilstm on a GPU machine with JAX and no network: install from carried wheels, then measure.
#
#   benchmarks/gpu.sh [--device gpu|cpu] [--wheels DIR] [--out DIR] [--quick]
#
# Prepare the wheels where there is network: `make gpu-wheels` (Python 3.12, manylinux x86_64:
# bilstm itself plus keras, pydantic, pydantic-core, annotated-types, typing-inspection, optree,
# namex, h5py; the machine already has JAX, numpy, scipy, pandas, click, rich, pyyaml,
# matplotlib and PyTorch). They are installed with `pip --no-index` into a folder on PYTHONPATH,
# so the machine's own packages are used for everything else.
#
# What it runs, all with --backend jax on the chosen device:
#   1. the tutorial's example: bilstm train --config configs/tutorial-bilstm.yaml
#   2. the card's comparison: bilstm compare --modes sum,mul,ave,concat (defaults: 10 repeats, 3000 epochs),
#      trained as vectorised programs (runs as stacked copies)
#   3. the realistic step at batch 256, T=100, 8 features, 128 units, one label per sequence:
#      bilstm's engine, plain keras model.fit, and PyTorch's cuDNN LSTM (eager), ms per step
#   4. the card's program alone: 40 BiLSTM-20 copies as one compiled program, ms per copy-step
# and writes $OUT/summary.json plus every run directory. --device cpu runs the same path on a
# CPU (that is how it is tested); --quick shrinks the comparison and the step counts.
set -euo pipefail

cd "$(dirname "$0")/.."
DEVICE=gpu
WHEELS=benchmarks/wheels
OUT_DIR=${OUT:-gpu-results}
QUICK=0
PYTHON=${PYTHON:-python3}
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE=$2; shift 2 ;;
        --wheels) WHEELS=$2; shift 2 ;;
        --out) OUT_DIR=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        *) echo "gpu.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
SITE="$OUT_DIR/site-packages"
LOG="$OUT_DIR/gpu.log"
: > "$LOG"
say() { echo "[gpu.sh $(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }

# ---------------------------------------------------------------- install (no network)
say "installing bilstm from $WHEELS into $SITE"
ls "$WHEELS"/*.whl > /dev/null
"$PYTHON" -m pip install --quiet --no-index --no-deps --target "$SITE" "$WHEELS"/*.whl 2>&1 | tee -a "$LOG"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export BILSTM_BACKEND=jax KERAS_BACKEND=jax
export BILSTM_XLA_CACHE="$OUT_DIR/compile-cache"
"$PYTHON" -c "import bilstm_cli, keras, pydantic, jax; print('bilstm', bilstm_cli.__version__, 'keras', keras.__version__, 'jax', jax.__version__, 'devices', jax.devices())" 2>&1 | tee -a "$LOG"
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi") | tee "$OUT_DIR/gpu.txt" >> "$LOG"

bilstm() { "$PYTHON" -m bilstm_cli "$@"; }
now() { date +%s.%N; }
elapsed() { "$PYTHON" -c "print(round($2 - $1, 2))"; }

# ---------------------------------------------------------------- 1. the tutorial's example
say "1. tutorial example on $DEVICE"
started=$(now)
bilstm train --config configs/tutorial-bilstm.yaml --device "$DEVICE" --seed 1 --out "$OUT_DIR/tutorial" --force --quiet 2>&1 | tee -a "$LOG"
TUTORIAL_SECONDS=$(elapsed "$started" "$(now)")

# ---------------------------------------------------------------- 2. the card's comparison
say "2. bilstm compare --modes sum,mul,ave,concat on $DEVICE"
COMPARE_ARGS=(--modes sum,mul,ave,concat --device "$DEVICE" --out "$OUT_DIR/compare" --force --quiet)
if [ "$QUICK" = 1 ]; then COMPARE_ARGS+=(--epochs 60 --repeats 2); fi
started=$(now)
bilstm compare "${COMPARE_ARGS[@]}" > "$OUT_DIR/compare.txt" 2>> "$LOG"
COMPARE_SECONDS=$(elapsed "$started" "$(now)")

# ---------------------------------------------------------------- 3. the realistic step
say "3. realistic step: batch 256, T=100, 8 features, 128 units, one label per sequence"
STEP_ARGS=(--backend jax --device "$DEVICE" --batch 256 --timesteps 100 --features 8 --units 128 --task sequence)
if [ "$QUICK" = 1 ]; then STEP_ARGS+=(--steps 5 --repeats 2); else STEP_ARGS+=(--steps 50 --repeats 5); fi
for what in engine fit torch; do
    "$PYTHON" benchmarks/step.py "$what" "${STEP_ARGS[@]}" > "$OUT_DIR/step-$what.json" 2>> "$LOG"
    cat "$OUT_DIR/step-$what.json" | tee -a "$LOG"
done

# ---------------------------------------------------------------- 4. the vectorised program alone
say "4. the card's program: 40 BiLSTM-20 copies as one program, batch 32, T=10 (ms per copy-step)"
VECTOR_ARGS=(--backend jax --device "$DEVICE" --batch 32 --timesteps 10 --units 20 --copies 40)
if [ "$QUICK" = 1 ]; then VECTOR_ARGS+=(--steps 20 --repeats 2); else VECTOR_ARGS+=(--steps 300 --repeats 5); fi
"$PYTHON" benchmarks/step.py engine "${VECTOR_ARGS[@]}" > "$OUT_DIR/step-vectorised.json" 2>> "$LOG"
cat "$OUT_DIR/step-vectorised.json" | tee -a "$LOG"

# ---------------------------------------------------------------- summary
"$PYTHON" - "$OUT_DIR" "$DEVICE" "$TUTORIAL_SECONDS" "$COMPARE_SECONDS" <<'EOF' | tee -a "$LOG"
import json, sys
from pathlib import Path

out, device, tutorial_seconds, compare_seconds = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
metrics = json.loads((out / "tutorial" / "metrics.json").read_text())
compare = json.loads((out / "compare" / "summary.json").read_text())
steps = {what: json.loads((out / f"step-{what}.json").read_text()) for what in ("engine", "fit", "torch")}
summary = {
    "device": device,
    "gpu": (out / "gpu.txt").read_text().strip(),
    "tutorial": {
        "wall_seconds": tutorial_seconds,
        "device": metrics["device"]["description"],
        "compile_seconds": metrics["timing"]["compile_seconds"],
        "ms_per_step": metrics["timing"]["ms_per_step"],
        "val_accuracy": metrics["final"]["val_accuracy"],
    },
    "compare": {
        "wall_seconds": compare_seconds,
        "repeats": compare["repeats"],
        "epochs": compare["epochs"],
        "best": compare["best"],
        "verdict": compare["verdict"],
    },
    "realistic_step_ms": {what: result.get("ms_per_step") for what, result in steps.items()},
    "vectorised_program": json.loads((out / "step-vectorised.json").read_text()),
}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
EOF
say "done: $OUT_DIR/summary.json"
