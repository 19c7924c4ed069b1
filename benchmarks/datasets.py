"""`make bench-datasets`: bilstm on real UEA/UCR archive files, against a plain Keras BiLSTM.

For each dataset (fetched by benchmarks/fetch_datasets.py from the pinned aeon wheel into
benchmarks/.data/): train `bilstm train --data TRAIN.ts` (a real subprocess of the CLI) with the
flags in RECIPE, score it with `bilstm evaluate RUN --data TEST.ts --json`, and run
benchmarks/keras_baseline.py (BiLSTM-64, Adam 1e-3, standardised, 60 epochs) on the same files.
Prints a Markdown table and writes benchmarks/datasets.json. Seconds are the wall time of the
whole subprocess, start-up, TensorFlow import and compilation included: `bilstm train` for
bilstm (not its evaluate call), the one baseline process (fit + test) for Keras.

Small training sets: ``--fractions 1 0.5 0.25`` (the default) also trains on stratified
subsamples of each TRAIN file (50% and 25% of every class, at least one series per class; drawn
with ``--subsample-seed``, the same files for bilstm and the baseline and for every run seed);
the TEST file is always the whole one.

Usage: python benchmarks/datasets.py [--seeds N] [--data-dir DIR] [--only NAME ...] [--with-jv]
                                     [--fractions F ...] [--no-baseline] [--set KEY=VALUE ...]
                                     [--out JSON]

``--set train.folds=0`` measures the recipe as it was before the k-fold ensemble (one model,
early stopping on a 20% split).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable

# Extra flags for `bilstm train --data FILE`: none, since the dataset recipe became the default.
RECIPE: list[str] = []  # the recipe is bilstm's default for dataset files (bilstm_cli/config/recipe.py)

DATASETS = ["BasicMotions", "ArrowHead", "OSULeaf"]
EXTRA = ["JapaneseVowels"]  # variable length, 12 features: with --with-jv


def run(command: list[str]) -> tuple[float, str]:
    """Run a command from the repository root; (wall seconds, stdout). Fails loudly."""
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stderr[-3000:]}")
    return wall, result.stdout


def subsample(train: Path, fraction: float, seed: int, dest: Path) -> Path:
    """A stratified ``fraction`` of ``train``'s series (at least one per class) as a new .ts
    file in ``dest``; the header and the series' order are kept. ``fraction`` 1: ``train``."""
    if fraction >= 1:
        return train
    lines = train.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip().lower().startswith("@data")) + 1
    rows = [i for i in range(start, len(lines)) if lines[i].strip()]
    by_label: dict[str, list[int]] = {}
    for i in rows:
        by_label.setdefault(lines[i].strip().rsplit(":", 1)[1].strip(), []).append(i)
    rng = random.Random(seed)
    kept = set()
    for label in sorted(by_label):
        members = by_label[label]
        kept.update(rng.sample(members, max(1, round(fraction * len(members)))))
    out = dest / f"{train.stem}-{fraction:g}-s{seed}.ts"
    out.write_text("".join(lines[:start] + [lines[i] for i in rows if i in kept]), encoding="utf-8")
    return out


def shape(train: Path, test: Path) -> dict:
    sys.path.insert(0, str(HERE))
    from keras_baseline import read_ts

    train_x, train_y, classes = read_ts(str(train))
    test_x, _, _ = read_ts(str(test), classes)
    lengths = sorted({len(s) for s in train_x + test_x})
    return {
        "train": len(train_x),
        "test": len(test_x),
        "length": lengths[0] if len(lengths) == 1 else [lengths[0], lengths[-1]],
        "features": int(train_x[0].shape[1]),
        "classes": len(classes),
        "fixed_length": len(lengths) == 1,
    }


def shape_text(s: dict) -> str:
    length = s["length"] if s["fixed_length"] else f"{s['length'][0]}-{s['length'][1]} (var)"
    return f"{s['train']}/{s['test']} x T={length} x F={s['features']}, {s['classes']} classes"


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description="bilstm vs a plain Keras BiLSTM on UEA/UCR .ts files")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 1..N per dataset and model (default 1)")
    parser.add_argument("--data-dir", type=Path, default=HERE / ".data", help="dataset cache (fetch_datasets.py)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these datasets only")
    parser.add_argument("--with-jv", action="store_true", help="also JapaneseVowels (variable length)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the Keras baseline")
    parser.add_argument(
        "--fractions", type=float, nargs="+", default=[1.0, 0.5, 0.25], metavar="F",
        help="train on these stratified fractions of each TRAIN file (default 1 0.5 0.25)",
    )  # fmt: skip
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="also pass --set KEY=VALUE to bilstm train"
    )
    parser.add_argument("--subsample-seed", type=int, default=0, help="seed of the subsamples (default 0)")
    parser.add_argument("--out", type=Path, default=HERE / "datasets.json", help="the JSON results")
    args = parser.parse_args()
    names = args.only or DATASETS + (EXTRA if args.with_jv else [])
    seeds = list(range(1, args.seeds + 1))

    run([PYTHON, str(HERE / "fetch_datasets.py"), "--dest", str(args.data_dir), *names])
    work = Path(tempfile.mkdtemp(prefix="bilstm-bench-datasets-"))
    started = time.perf_counter()
    rows = []
    jobs = [(name, fraction) for name in names for fraction in args.fractions]
    for name, fraction in jobs:
        full, test = args.data_dir / name / f"{name}_TRAIN.ts", args.data_dir / name / f"{name}_TEST.ts"
        train = subsample(full, fraction, args.subsample_seed, work)
        label = name if fraction >= 1 else f"{name} {fraction:.0%}"
        row = {"dataset": label, "fraction": fraction, "shape": shape(train, test), "bilstm": [], "baseline": []}
        for seed in seeds:
            out = work / f"{label.replace(' ', '-').replace('%', '')}-{seed}"
            command = [PYTHON, "-m", "bilstm_cli", "train", "--data", str(train), *RECIPE]
            command += [flag for setting in args.set for flag in ("--set", setting)]
            command += ["--seed", str(seed), "--out", str(out), "--quiet"]
            wall, _ = run(command)
            metrics = json.loads((out / "metrics.json").read_text())
            _, scored = run([PYTHON, "-m", "bilstm_cli", "evaluate", str(out), "--data", str(test), "--json"])
            score = json.loads(scored)
            row["bilstm"].append({
                "seed": seed, "accuracy": score["accuracy"], "seconds": round(wall, 2),
                "epochs_run": metrics["epochs_run"], "best_epoch": metrics["best_epoch"],
                "stopped": metrics["stopped"], "refit": metrics.get("refit"), "selection": metrics.get("selection"),
                "folds": metrics.get("folds"),
                "command": " ".join(["bilstm", *command[3:]]),
            })  # fmt: skip
            members = (metrics.get("folds") or {}).get("members")
            best = [m["best_epoch"] for m in members] if members else metrics["best_epoch"]  # an ensemble's members'
            print(f"{label} seed {seed}: bilstm {score['accuracy']:.3f} in {wall:.1f}s "
                  f"({metrics['epochs_run']} epochs, best {best})", file=sys.stderr)  # fmt: skip
            if not args.no_baseline:
                baseline = [PYTHON, str(HERE / "keras_baseline.py"), str(train), str(test), "--seed", str(seed)]
                wall, printed = run([*baseline, "--json"])
                result = json.loads(printed.strip().splitlines()[-1])
                row["baseline"].append({"seed": seed, "accuracy": result["accuracy"], "seconds": round(wall, 2)})
                print(f"{label} seed {seed}: baseline {result['accuracy']:.3f} in {wall:.1f}s", file=sys.stderr)
        rows.append(row)

    lines = [
        "| dataset | shape (train/test x T x F) | bilstm | baseline | bilstm s | baseline s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        b, k = row["bilstm"], row["baseline"]
        k_accuracy = mean_sd([r["accuracy"] for r in k]) if k else "-"
        k_seconds = f"{statistics.mean(r['seconds'] for r in k):.1f}" if k else "-"
        lines.append(
            f"| {row['dataset']} | {shape_text(row['shape'])} | {mean_sd([r['accuracy'] for r in b])} "
            f"| {k_accuracy} | {statistics.mean(r['seconds'] for r in b):.1f} | {k_seconds} |"
        )
    print("\n".join(lines))
    total = time.perf_counter() - started
    print(f"\n{len(seeds)} seed(s); seconds: wall time per subprocess on {os.cpu_count()} CPU(s); total {total:.0f}s")
    result = {
        "recipe": RECIPE + [flag for setting in args.set for flag in ("--set", setting)],
        "seeds": seeds,
        "fractions": args.fractions,
        "subsample_seed": args.subsample_seed,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "total_seconds": round(total, 1),
        "datasets": rows,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
