"""`make bench`: bilstm measured side by side against the tutorial's way, in one run.

1. per-step training time: one model.fit per fresh sequence (the tutorial) vs the engine
2. end to end: the tutorial's 1000-epoch BiLSTM script vs `bilstm train` (subprocesses)
3. comparison: the tutorial's merge-mode script (1 repeat) vs `bilstm compare` (10 repeats)
4. start-up: `bilstm --help` and `bilstm generate --samples 100000`
5. scaling: per-step time and peak memory of `bilstm train` (batch 64) at T = 10, 100, 1000

Prints a table and writes benchmarks/results.json. Timings are medians of repeated runs
where a run is short enough to repeat (the tutorial's scripts take minutes and run once).
Usage: python benchmarks/run.py [--quick]   (--quick: fewer epochs, for a smoke test)
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
QUICK = "--quick" in sys.argv
PYTHON = sys.executable
WORK = Path(tempfile.mkdtemp(prefix="bilstm-bench-"))


def run(command: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run a command; returns (wall seconds, peak RSS in MiB, combined output)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **(env or {})}
    )
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{output[-2000:]}")
    return wall, usage.ru_maxrss / 1024, output


def bilstm(*args: str) -> list[str]:
    return [PYTHON, "-m", "bilstm_cli", *args]


def machine() -> dict:
    from bilstm_cli import backend

    tf = backend.tensorflow()  # quietly: TensorFlow's start-up logs would bury the table

    cpu = "unknown"
    if Path("/proc/cpuinfo").exists():
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1).strip() if match else cpu
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "device": f"{len(gpus)} GPU(s)" if gpus else "CPU only",
    }


# ---------------------------------------------------------------------------- 1. per step


def per_step(naive_steps: int = 200, engine_steps: int = 1000, repeats: int = 5) -> dict:
    from bilstm_cli.device import select_device

    device = select_device("auto")
    import keras
    import numpy as np
    from keras.layers import LSTM, Bidirectional, Dense, Input, TimeDistributed
    from keras.models import Sequential

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from tutorial_common import get_sequence

    # the tutorial's loop, faithfully: a fresh sequence, one model.fit, batch size 1
    keras.utils.set_random_seed(0)
    model = Sequential(
        [
            Input((10, 1)),
            Bidirectional(LSTM(20, return_sequences=True)),
            TimeDistributed(Dense(1, activation="sigmoid")),
        ]
    )
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    fit_times = []
    for _ in range(naive_steps):
        X, y = get_sequence(10)
        started = time.perf_counter()
        model.fit(X, y, epochs=1, batch_size=1, verbose=0)
        fit_times.append(time.perf_counter() - started)
    naive = statistics.median(fit_times[10:])  # steady state: the first calls trace the graph

    # bilstm's engine on the same task and model, as `train --config tutorial-bilstm.yaml` runs it
    from bilstm_cli.config.resolve import resolve_config
    from bilstm_cli.data.batches import OnlineSource
    from bilstm_cli.engine.tensorflow import TrainingEngine, use_xla
    from bilstm_cli.model.build import build_model
    from bilstm_cli.model.spec import ModelSpec

    config = resolve_config(ROOT / "configs" / "tutorial-bilstm.yaml")
    spec = ModelSpec(1, 2)
    keras.utils.set_random_seed(0)
    xla = use_xla(config.train.jit_compile, device.kind, 1, 10)
    engine = TrainingEngine(
        build_model(config.model, spec, masked=False),
        spec,
        jit_compile=xla,
        steps_per_call=config.train.log_every,
        device=device.name,
    )
    compile_seconds = engine.compile((1, 10, 1))
    batches = OnlineSource(config.data, 1, seed=0).batches(0, engine_steps)
    engine.train(batches)  # warm
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        engine.train(batches)
        times.append((time.perf_counter() - started) / engine_steps)
    fast = statistics.median(times)
    assert np.isfinite(fast)
    return {
        "tutorial_ms_per_step": naive * 1000,
        "bilstm_ms_per_step": fast * 1000,
        "bilstm_compile_seconds": compile_seconds,
        "ratio": naive / fast,
        "device": device.description,
        "xla": xla,
    }


# ---------------------------------------------------------------------------- 2. end to end


def end_to_end(runs: int = 3) -> dict:
    epochs = "100" if QUICK else "1000"
    tutorial_wall, _, output = run([PYTHON, "benchmarks/tutorial_bilstm.py", epochs])
    tutorial_accuracy = float(re.search(r"ACCURACY ([0-9.]+)", output).group(1))
    walls, accuracies = [], []
    for index in range(runs):
        out = WORK / f"e2e-{index}"
        wall, _, _ = run(
            bilstm(
                "train",
                "--config",
                "configs/tutorial-bilstm.yaml",
                "--epochs",
                epochs,
                "--seed",
                str(index + 1),
                "--out",
                str(out),
                "--quiet",
            )
        )
        walls.append(wall)
        accuracies.append(json.loads((out / "metrics.json").read_text())["final"]["val_accuracy"])
    return {
        "tutorial_seconds": tutorial_wall,
        "tutorial_accuracy": tutorial_accuracy,
        "bilstm_seconds_median": statistics.median(walls),
        "bilstm_seconds_first": walls[0],
        "bilstm_seconds": walls,
        "bilstm_accuracy_mean": statistics.mean(accuracies),
        "ratio": tutorial_wall / statistics.median(walls),
    }


# ---------------------------------------------------------------------------- 3. comparison


def comparison() -> dict:
    epochs = "25" if QUICK else "250"
    tutorial_wall, _, _ = run([PYTHON, "benchmarks/tutorial_merge_modes.py", epochs, str(WORK / "tutorial.png")])
    out = WORK / "compare"
    wall, _, _ = run(
        bilstm(
            "compare", "--config", "configs/tutorial-merge-modes.yaml", "--epochs", epochs, "--out", str(out), "--quiet"
        )
    )
    summary = json.loads((out / "summary.json").read_text())
    return {
        "tutorial_seconds_1_repeat": tutorial_wall,
        "bilstm_seconds_10_repeats": wall,
        "ratio": wall / tutorial_wall,
        "verdict": summary["verdict"],
    }


# ---------------------------------------------------------------------------- 4. start-up


def start_up(repeats: int = 5) -> dict:
    helps = [run(bilstm("--help"))[0] for _ in range(repeats)]
    target = WORK / "x.npz"
    generates = [run(bilstm("generate", "--samples", "100000", "-o", str(target)))[0] for _ in range(repeats)]
    return {"help_seconds": statistics.median(helps), "generate_100k_seconds": statistics.median(generates)}


# ---------------------------------------------------------------------------- 5. scaling


def scaling() -> dict:
    rows = {}
    for timesteps, epochs in ((10, 400), (100, 100), (1000, 20)):
        out = WORK / f"scale-{timesteps}"
        _, peak, _ = run(
            bilstm(
                "train",
                "--set",
                f"data.timesteps={timesteps}",
                "--set",
                "data.samples_per_epoch=64",
                "--batch-size",
                "64",
                "--epochs",
                str(epochs),
                "--set",
                "data.validation_size=0",
                "--seed",
                "1",
                "--out",
                str(out),
                "--quiet",
            )
        )
        timing = json.loads((out / "metrics.json").read_text())["timing"]
        rows[timesteps] = {
            "ms_per_epoch": timing["ms_per_step"],
            "compile_seconds": timing["compile_seconds"],
            "peak_rss_mib": peak,
        }
    rows["ms_per_step_ratio_1000_vs_100"] = rows[1000]["ms_per_epoch"] / rows[100]["ms_per_epoch"]
    return rows


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    started = time.perf_counter()
    results = {"machine": machine(), "quick": QUICK}
    console.print(f"machine: {results['machine']}")
    for name, function in (
        ("per_step", per_step),
        ("end_to_end", end_to_end),
        ("comparison", comparison),
        ("start_up", start_up),
        ("scaling", scaling),
    ):
        console.print(f"running {name} ...")
        results[name] = function()
    results["total_seconds"] = time.perf_counter() - started
    (ROOT / "benchmarks" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(WORK, ignore_errors=True)

    p, e, c, s, k = (results[n] for n in ("per_step", "end_to_end", "comparison", "start_up", "scaling"))
    table = Table(
        "benchmark", "tutorial's way", "bilstm", "ratio", "target", title="bilstm benchmarks", title_justify="left"
    )
    table.add_row(
        "1. per training step (BiLSTM-20, T=10, batch 1)",
        f"{p['tutorial_ms_per_step']:.1f} ms",
        f"{p['bilstm_ms_per_step']:.3f} ms (+ compile {p['bilstm_compile_seconds']:.1f} s once)",
        f"{p['ratio']:.0f}x faster",
        ">= 80x",
    )
    table.add_row(
        "2. end to end, 1000-epoch BiLSTM example",
        f"{e['tutorial_seconds']:.1f} s, accuracy {e['tutorial_accuracy']:.3f}",
        f"{e['bilstm_seconds_median']:.1f} s median (first {e['bilstm_seconds_first']:.1f} s), "
        f"accuracy {e['bilstm_accuracy_mean']:.3f}",
        f"{e['ratio']:.1f}x faster",
        ">= 10x",
    )
    table.add_row(
        "3. merge-mode comparison",
        f"{c['tutorial_seconds_1_repeat']:.1f} s (1 repeat)",
        f"{c['bilstm_seconds_10_repeats']:.1f} s (10 repeats)",
        f"{c['ratio']:.2f} of the time",
        "<= 0.5",
    )
    table.add_row("4. start-up: bilstm --help", "", f"{s['help_seconds']:.2f} s", "", "< 0.5 s")
    table.add_row("4. start-up: generate 100k sequences", "", f"{s['generate_100k_seconds']:.2f} s", "", "< 1.5 s")
    for timesteps in (10, 100, 1000):
        row = k[timesteps]
        table.add_row(
            f"5. train, batch 64, T={timesteps}",
            "",
            f"{row['ms_per_epoch']:.2f} ms/step, peak {row['peak_rss_mib']:.0f} MiB",
            "",
            "linear in T",
        )
    table.add_row("5. T=1000 vs T=100 step time", "", "", f"{k['ms_per_step_ratio_1000_vs_100']:.1f}x", "~10x")
    console.print(table)
    console.print(f"total {results['total_seconds'] / 60:.1f} min; results in benchmarks/results.json")


if __name__ == "__main__":
    main()
