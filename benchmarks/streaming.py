"""Issue 22's figures, measured in one run: data larger than memory.

1. `bilstm generate` of 10M sequences to Parquet and of 1M sequences to CSV (blockwise writes)
2. load + first epoch of the 1M-sequence CSV (229 MB): `bilstm train --epochs 1`, this tree vs
   the baseline commit (benchmarks/.baseline, as `make bench`), and this tree streaming it
   (`--set data.memory_limit=256MB`)
3. one epoch on the 10M-sequence Parquet file with the default memory limit (an eighth of the
   machine's memory: the file streams): wall time and peak RSS of the process tree
4. `bilstm predict` of that model on the 10M sequences, output to /dev/null: wall time, peak RSS

Usage: python benchmarks/streaming.py [--backends tensorflow,jax] [--big 10000000] [--csv 1000000]
Writes benchmarks/streaming.json and prints a table. Not a test: figures for the README.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PYTHON, ROOT, WORK, baseline, bilstm, run  # noqa: E402


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--big", type=int, default=10_000_000, help="sequences of the large Parquet file")
    parser.add_argument("--csv", type=int, default=1_000_000, help="sequences of the CSV file")
    parser.add_argument("--parts", default="csv,big", help="csv (2.), big (3. and 4.); others keep earlier figures")
    return parser.parse_args()


def measured(command, env=None, cwd=ROOT) -> dict:
    wall, peak, output = run(command, env, cwd)
    return {"seconds": round(wall, 1), "peak_rss_mib": round(peak), "output": output.strip().splitlines()[-3:]}


def predict_to_null(run_dir: Path, data: Path, backend: str) -> dict:
    """`bilstm predict` with its output thrown away (and counted), measured like the others."""
    script = (
        "import subprocess, sys\n"
        f"p = subprocess.Popen({bilstm('predict', str(run_dir), str(data), '--backend', backend)!r},"
        " stdout=subprocess.PIPE)\n"
        "lines = sum(block.count(b'\\n') for block in iter(lambda: p.stdout.read(1 << 20), b''))\n"
        "sys.exit(p.wait()) if p.wait() else print(f'{lines} lines')\n"
    )
    return measured([PYTHON, "-c", script])


def main() -> None:
    args = arguments()
    backends = args.backends.split(",")
    big, csv = WORK / "big.parquet", WORK / "big.csv"
    parts = args.parts.split(",")
    saved = ROOT / "benchmarks" / "streaming.json"
    results: dict = json.loads(saved.read_text()) if saved.exists() and parts != ["csv", "big"] else {}
    results["sequences"] = {"parquet": args.big, "csv": args.csv}
    results["generate"] = {
        "parquet": measured(bilstm("generate", "--samples", str(args.big), "-o", str(big), "--seed", "1")),
        "csv": measured(bilstm("generate", "--samples", str(args.csv), "-o", str(csv), "--seed", "1")),
    }
    results["file_mb"] = {"parquet": big.stat().st_size / 1e6, "csv": csv.stat().st_size / 1e6}
    train = ("train", "--epochs", "1", "--seed", "1", "--no-tensorboard", "--quiet")
    for backend in backends:
        row = results.setdefault(backend, {})
        out = WORK / f"csv-{backend}"
        if "csv" in parts:
            command, env, cwd = baseline(*train, "--data", str(csv), "--backend", backend, "--out", str(out / "b"))
            row["csv_baseline"] = measured(command, env, cwd)
            row["csv"] = measured(bilstm(*train, "--data", str(csv), "--backend", backend, "--out", str(out / "n")))
            streamed = ("--set", "data.memory_limit=256MB")
            row["csv_streamed"] = measured(
                bilstm(*train, "--data", str(csv), "--backend", backend, *streamed, "--out", str(out / "s"))
            )
        if "big" not in parts:
            continue
        run_dir = WORK / f"big-{backend}"
        row["big_epoch"] = measured(bilstm(*train, "--data", str(big), "--backend", backend, "--out", str(run_dir)))
        row["big_epoch"]["metrics"] = json.loads((run_dir / "metrics.json").read_text())["timing"]
        row["predict"] = predict_to_null(run_dir, big, backend)
        shutil.rmtree(out, ignore_errors=True)
    saved.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    for backend in backends:
        row = results[backend]
        ratio = row["csv"]["seconds"] / row["csv_baseline"]["seconds"]
        print(
            f"{backend}: 1M CSV load + epoch {row['csv']['seconds']} s vs baseline {row['csv_baseline']['seconds']} s "
            f"= {ratio:.2f}x (streamed: {row['csv_streamed']['seconds']} s, "
            f"{row['csv_streamed']['peak_rss_mib']} MiB); "
            f"10M epoch {row['big_epoch']['seconds']} s at {row['big_epoch']['peak_rss_mib']} MiB; "
            f"predict 10M {row['predict']['seconds']} s at {row['predict']['peak_rss_mib']} MiB"
        )
    subprocess.run(["rm", "-rf", str(WORK)])


if __name__ == "__main__":
    main()
