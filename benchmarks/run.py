"""`make bench`: bilstm measured side by side against the tutorial's way, across backends, and
against a baseline commit of bilstm itself, in one run.

1. per training step (the tutorial's step): one model.fit per fresh sequence vs bilstm's engine
2. end to end: the tutorial's 1000-epoch BiLSTM script vs `bilstm train` (subprocesses)
3. `bilstm compare --config configs/tutorial-merge-modes.yaml` (batch 1, 250 epochs, 10 repeats):
   this tree vs the baseline commit (and the tutorial's own script, 1 repeat)
4. the card's command, `bilstm compare --modes sum,mul,ave,concat` with default settings: this
   tree vs the baseline commit, wall time and peak memory of the whole process tree
5. start-up: `bilstm --help` and `bilstm generate --samples 100000`
6. scaling: per-step time and peak memory of `bilstm train` (batch 64) at T = 10, 100, 1000
7. a realistic step (batch 64, T=100, 8 features, 64 units, one label per sequence): bilstm's
   engine vs plain `model.fit` vs PyTorch eager (when PyTorch is installed)
8. one program of the card's comparison (20 runs), phase by phase (benchmarks/profile_card.py)

Every bilstm row is measured for each backend (TensorFlow, JAX), each command in its own
process. The baseline is commit BASELINE_COMMIT checked out beside (`benchmarks/.baseline`, a git
worktree made by `make bench`) and run from the same environment with PYTHONPATH pointing at it.
Prints a table and writes benchmarks/results.json. Timings are medians of repeated
runs where a run is short enough to repeat (the tutorial's scripts take minutes and run once).
Usage: python benchmarks/run.py [--quick] [--only NAME,...]   (--quick: fewer epochs, a smoke test)
"""

from __future__ import annotations

import contextlib
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
ONLY = next((a.split("=", 1)[1].split(",") for a in sys.argv if a.startswith("--only=")), None)
PYTHON = sys.executable
WORK = Path(tempfile.mkdtemp(prefix="bilstm-bench-"))
BACKENDS = ("tensorflow", "jax")
BASELINE_COMMIT = "d566427"  # the last commit before the vectorised engine (issue 24's reference)
BASELINE = ROOT / "benchmarks" / ".baseline"


def run(command: list[str], env: dict | None = None, cwd: Path = ROOT) -> tuple[float, float, str]:
    """Run a command; returns (wall seconds, peak RSS in MiB of its whole process tree (worker
    processes included, sampled every 0.1 s), combined output)."""
    measured = run_measured(command, env, cwd)
    return measured["wall"], measured["peak_rss"], measured["output"]


def run_measured(command: list[str], env: dict | None = None, cwd: Path = ROOT) -> dict:
    """Run a command; returns its wall seconds, combined output and two peaks of its whole
    process tree's memory (MiB, sampled every 0.1 s): ``peak_rss``, the sum of the processes'
    resident sets, and ``peak_pss``, their proportional set sizes, where pages shared between
    processes (the backend's libraries, mapped by every worker: ~650 MiB of TensorFlow) count
    once in all instead of once per process: the memory the tree really takes."""
    import threading

    import psutil

    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, env={**os.environ, **(env or {})}
    )
    peak = {"rss": 0.0, "pss": 0.0}
    finished = threading.Event()

    def sample() -> None:
        # polls the tree until the main thread has reaped the process (process.poll() here
        # would reap it first, and the os.wait4 below, which reads its rusage, would fail)
        try:
            root = psutil.Process(process.pid)
            while not finished.is_set():
                tree = [root, *root.children(recursive=True)]
                rss = pss = 0
                for member in tree:
                    with contextlib.suppress(psutil.Error):  # a worker may end between the two calls
                        resident = member.memory_info().rss
                        rss += resident
                        # PSS where the system reports it (Linux), else the resident set
                        pss += getattr(member.memory_full_info(), "pss", resident)
                peak["rss"] = max(peak["rss"], rss / 2**20)
                peak["pss"] = max(peak["pss"], pss / 2**20)
                time.sleep(0.1)
        except psutil.Error:
            return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    finished.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{output[-2000:]}")
    largest_child = usage.ru_maxrss / 1024
    return {
        "wall": wall,
        "peak_rss": max(peak["rss"], largest_child),
        "peak_pss": peak["pss"] or peak["rss"],
        "output": output,
    }


def baseline(*args: str) -> tuple[list[str], dict, Path]:
    """The baseline commit's `bilstm ARGS`: (command, environment, working directory)."""
    if not (BASELINE / "bilstm_cli").exists():
        raise SystemExit(
            f"no baseline checkout in {BASELINE}: run `make bench` (it adds a git worktree of {BASELINE_COMMIT})"
        )
    return [PYTHON, "-m", "bilstm_cli", *args], {"PYTHONPATH": str(BASELINE)}, BASELINE


def bilstm(*args: str) -> list[str]:
    return [PYTHON, "-m", "bilstm_cli", *args]


def step(what: str, backend: str, *args: str) -> float | None:
    """ms per step of one setup (benchmarks/step.py in its own process)."""
    _, _, output = run([PYTHON, "benchmarks/step.py", what, "--backend", backend, *args])
    return json.loads(output.strip().splitlines()[-1])["ms_per_step"]


def machine() -> dict:
    from importlib.metadata import version

    cpu = "unknown"
    if Path("/proc/cpuinfo").exists():
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1).strip() if match else cpu
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": version("tensorflow"),
        "jax": version("jax"),
        "keras": version("keras"),
    }


# ---------------------------------------------------------------------------- 1. per step


def per_step() -> dict:
    steps = "200" if QUICK else "1000"
    results = {"tutorial_ms_per_step": step("tutorial-fit", "tensorflow", "--steps", "100" if QUICK else "200")}
    for backend in BACKENDS:
        results[f"{backend}_ms_per_step"] = step("engine", backend, "--steps", steps)
        results[f"{backend}_ratio"] = results["tutorial_ms_per_step"] / results[f"{backend}_ms_per_step"]
    return results


# ---------------------------------------------------------------------------- 2. end to end


def end_to_end(runs: int = 3) -> dict:
    epochs = "100" if QUICK else "1000"
    tutorial_wall, _, output = run(
        [PYTHON, "benchmarks/tutorial_bilstm.py", epochs], env={"KERAS_BACKEND": "tensorflow"}
    )
    results = {
        "tutorial_seconds": tutorial_wall,
        "tutorial_accuracy": float(re.search(r"ACCURACY ([0-9.]+)", output).group(1)),
    }
    for backend in BACKENDS:
        walls, accuracies = [], []
        for index in range(runs):
            out = WORK / f"e2e-{backend}-{index}"
            command = ["train", "--config", "configs/tutorial-bilstm.yaml", "--epochs", epochs]
            command += ["--seed", str(index + 1), "--backend", backend, "--out", str(out), "--quiet"]
            walls.append(run(bilstm(*command))[0])
            accuracies.append(json.loads((out / "metrics.json").read_text())["final"]["val_accuracy"])
        results[backend] = {
            "seconds_median": statistics.median(walls),
            "seconds": walls,
            "accuracy_mean": statistics.mean(accuracies),
            "ratio": tutorial_wall / statistics.median(walls),
        }
    return results


# ---------------------------------------------------------------------------- 3 and 4. comparisons


def tutorial_comparison() -> dict:
    """configs/tutorial-merge-modes.yaml (batch 1): this tree vs the baseline, per backend."""
    epochs = "25" if QUICK else "250"
    tutorial_wall, _, _ = run(
        [PYTHON, "benchmarks/tutorial_merge_modes.py", epochs, str(WORK / "tutorial.png")],
        env={"KERAS_BACKEND": "tensorflow"},
    )
    results = {"tutorial_seconds_1_repeat": tutorial_wall}
    for backend in BACKENDS:
        arguments = ["compare", "--config", "configs/tutorial-merge-modes.yaml", "--epochs", epochs, "--quiet"]
        arguments += ["--backend", backend]
        wall, _, _ = run(bilstm(*arguments, "--out", str(WORK / f"compare-{backend}")))
        command, env, cwd = baseline(*arguments, "--out", str(WORK / f"compare-baseline-{backend}"))
        baseline_wall, _, _ = run(command, env, cwd)
        results[backend] = {"seconds": wall, "baseline_seconds": baseline_wall, "vs_baseline": wall / baseline_wall}
    return results


def card_comparison() -> dict:
    """The exact command from the project's card, with the built-in defaults: this tree vs the
    baseline commit, on each backend (wall time and peak memory of the process tree)."""
    extra = ["--epochs", "300"] if QUICK else []
    results = {}
    for backend in BACKENDS:
        arguments = ["compare", "--modes", "sum,mul,ave,concat", *extra, "--backend", backend, "--quiet"]
        out = WORK / f"card-{backend}"
        ours = run_measured(bilstm(*arguments, "--out", str(out)))
        summary = json.loads((out / "summary.json").read_text())
        command, env, cwd = baseline(*arguments, "--out", str(WORK / f"card-baseline-{backend}"))
        theirs = run_measured(command, env, cwd)
        results[backend] = {
            "seconds": ours["wall"],
            "peak_rss_mib": ours["peak_rss"],
            "peak_pss_mib": ours["peak_pss"],
            "baseline_seconds": theirs["wall"],
            "baseline_peak_rss_mib": theirs["peak_rss"],
            "baseline_peak_pss_mib": theirs["peak_pss"],
            "best": summary["best"],
            "verdict": summary["verdict"],
        }
    reference = results["tensorflow"]["baseline_seconds"]
    for backend in BACKENDS:
        results[backend]["vs_baseline_tensorflow"] = results[backend]["seconds"] / reference
    return results


# ---------------------------------------------------------------------------- 5. start-up


def start_up(repeats: int = 5) -> dict:
    helps = [run(bilstm("--help"))[0] for _ in range(repeats)]
    target = WORK / "x.npz"
    generates = [run(bilstm("generate", "--samples", "100000", "-o", str(target)))[0] for _ in range(repeats)]
    return {"help_seconds": statistics.median(helps), "generate_100k_seconds": statistics.median(generates)}


# ---------------------------------------------------------------------------- 6. scaling


def scaling() -> dict:
    results = {}
    for backend in BACKENDS:
        rows = {}
        for timesteps, epochs in ((10, 400), (100, 100), (1000, 20)):
            out = WORK / f"scale-{backend}-{timesteps}"
            command = ["train", "--set", f"data.timesteps={timesteps}", "--set", "data.samples_per_epoch=64"]
            command += ["--batch-size", "64", "--epochs", str(epochs), "--set", "data.validation_size=0"]
            _, peak, _ = run(bilstm(*command, "--seed", "1", "--backend", backend, "--out", str(out), "--quiet"))
            timing = json.loads((out / "metrics.json").read_text())["timing"]
            rows[timesteps] = {"ms_per_step": timing["ms_per_step"], "peak_rss_mib": peak}
        rows["ratio_1000_vs_100"] = rows[1000]["ms_per_step"] / rows[100]["ms_per_step"]
        results[backend] = rows
    return results


# ---------------------------------------------------------------------------- 7. realistic step


def realistic_step() -> dict:
    size = ["--batch", "64", "--timesteps", "100", "--features", "8", "--units", "64", "--task", "sequence"]
    size += ["--steps", "10" if QUICK else "40", "--repeats", "3" if QUICK else "5"]
    results = {}
    for backend in BACKENDS:
        results[f"bilstm_{backend}"] = step("engine", backend, *size)
        results[f"fit_{backend}"] = step("fit", backend, *size)
    results["torch_eager"] = step("torch", "tensorflow", *size)
    return results


def card_profile() -> dict:
    """Where one program of the card's comparison spends its time (benchmarks/profile_card.py)."""
    epochs = ["--epochs", "300" if QUICK else "3000"]
    results = {}
    for backend in BACKENDS:
        command = [PYTHON, str(ROOT / "benchmarks" / "profile_card.py"), "--backend", backend, *epochs]
        _, _, output = run(command)
        results[backend] = json.loads(output[output.index("{") :])
    return results


SECTIONS = {
    "per_step": per_step,
    "end_to_end": end_to_end,
    "tutorial_comparison": tutorial_comparison,
    "card_comparison": card_comparison,
    "start_up": start_up,
    "scaling": scaling,
    "realistic_step": realistic_step,
    "card_profile": card_profile,
}


def table(results: dict):
    from rich.table import Table

    rows = Table(
        "benchmark", "reference", "tensorflow", "jax", "target", title="bilstm benchmarks", title_justify="left"
    )

    def ms(value):
        return "n/a" if value is None else f"{value:.3g} ms"

    if "per_step" in results:
        p = results["per_step"]
        rows.add_row(
            "1. per step, BiLSTM-20, T=10, batch 1",
            f"{p['tutorial_ms_per_step']:.1f} ms (model.fit per sequence)",
            f"{ms(p['tensorflow_ms_per_step'])} ({p['tensorflow_ratio']:.0f}x)",
            f"{ms(p['jax_ms_per_step'])} ({p['jax_ratio']:.0f}x)",
            ">= 80x",
        )
    if "end_to_end" in results:
        e = results["end_to_end"]
        rows.add_row(
            "2. end to end, 1000-epoch BiLSTM example",
            f"{e['tutorial_seconds']:.1f} s, accuracy {e['tutorial_accuracy']:.3f}",
            *(
                f"{e[b]['seconds_median']:.1f} s ({e[b]['ratio']:.1f}x), accuracy {e[b]['accuracy_mean']:.3f}"
                for b in BACKENDS
            ),
            ">= 20x",
        )
    if "tutorial_comparison" in results:
        c = results["tutorial_comparison"]
        rows.add_row(
            "3. tutorial merge modes (batch 1), 10 repeats",
            f"tutorial script, 1 repeat: {c['tutorial_seconds_1_repeat']:.1f} s",
            *(
                f"{c[b]['seconds']:.1f} s; baseline {c[b]['baseline_seconds']:.1f} s: {c[b]['vs_baseline']:.2f}x"
                for b in BACKENDS
            ),
            "<= 0.3x the baseline",
        )
    if "card_comparison" in results:
        k = results["card_comparison"]
        rows.add_row(
            "4. compare --modes sum,mul,ave,concat",
            f"baseline TF {k['tensorflow']['baseline_seconds']:.1f} s, JAX {k['jax']['baseline_seconds']:.1f} s",
            *(f"{k[b]['seconds']:.1f} s: {k[b]['vs_baseline_tensorflow']:.2f}x baseline TF" for b in BACKENDS),
            "<= 0.25x baseline TF",
        )
        for measure in ("pss", "rss"):
            key = f"peak_{measure}_mib"
            rows.add_row(
                f"4. peak memory (process tree, {measure.upper()})",
                "baseline TF {:.0f} MiB, JAX {:.0f} MiB".format(
                    k["tensorflow"][f"baseline_{key}"], k["jax"][f"baseline_{key}"]
                ),
                *(f"{k[b][key]:.0f} MiB ({k[b][key] / k[b][f'baseline_{key}']:.2f}x)" for b in BACKENDS),
                "<= 2x baseline",
            )
    if "start_up" in results:
        s = results["start_up"]
        rows.add_row(
            "5. bilstm --help / generate 100k", "", f"{s['help_seconds']:.2f} s / {s['generate_100k_seconds']:.2f} s"
        )
    if "scaling" in results:
        k = results["scaling"]
        for timesteps in (10, 100, 1000):
            cells = [
                f"{k[b][timesteps]['ms_per_step']:.2f} ms, {k[b][timesteps]['peak_rss_mib']:.0f} MiB" for b in BACKENDS
            ]
            rows.add_row(f"6. train batch 64, T={timesteps}", "", *cells, "linear in T")
        rows.add_row("6. T=1000 vs T=100", "", *(f"{k[b]['ratio_1000_vs_100']:.1f}x" for b in BACKENDS), "~10x")
    if "realistic_step" in results:
        r = results["realistic_step"]
        rows.add_row(
            "7. realistic step: bilstm",
            f"PyTorch eager {ms(r['torch_eager'])}",
            ms(r["bilstm_tensorflow"]),
            ms(r["bilstm_jax"]),
            "<= fastest reference",
        )
        rows.add_row("7. realistic step: plain model.fit", "", ms(r["fit_tensorflow"]), ms(r["fit_jax"]))
    if "card_profile" in results:
        f = results["card_profile"]
        for phase in f["tensorflow"]["seconds"]:
            rows.add_row(
                f"8. card program (20 runs): {phase}", "", *(f"{f[b]['seconds'][phase]:.1f} s" for b in BACKENDS)
            )
        rows.add_row(
            "8. card program: ms per run-step (training calls)",
            f"floor at sgemm peak: {f['tensorflow']['floor_seconds_at_sgemm_peak']:.1f} s",
            *(
                f"{f[b]['ms_per_copy_step_training']:.3f} ms, {f[b]['gflops_achieved_training']:.1f} GFLOP/s"
                for b in BACKENDS
            ),
        )
    return rows


def main() -> None:
    from rich.console import Console

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 180)
    started = time.perf_counter()
    results = {"machine": machine(), "quick": QUICK}
    console.print(f"machine: {results['machine']}")
    for name, function in SECTIONS.items():
        if ONLY and name not in ONLY:
            continue
        console.print(f"running {name} ...")
        results[name] = function()
    results["total_seconds"] = time.perf_counter() - started
    (ROOT / "benchmarks" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(WORK, ignore_errors=True)
    console.print(table(results))
    console.print(f"total {results['total_seconds'] / 60:.1f} min; results in benchmarks/results.json")


if __name__ == "__main__":
    main()
