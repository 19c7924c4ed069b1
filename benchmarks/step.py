"""Milliseconds per training step of one setup, in a process of its own (one backend per process).

    python benchmarks/step.py WHAT --backend tensorflow|jax [--batch 64 --timesteps 100 --features 8
                              --units 64 --task sequence --steps 60 --repeats 5] [--device cpu|gpu]

WHAT:
  engine        bilstm's compiled multi-step engine (what `bilstm train` runs)
  fit           plain Keras `model.fit` on the same model and data, batch after batch
  tutorial-fit  the tutorial's loop: one `model.fit` per single fresh sequence
  torch         PyTorch eager: nn.LSTM(bidirectional=True), Adam, the same sizes (if installed)

Prints one JSON object: {"ms_per_step": median over repeats, "compile_seconds": ..., ...}.
All variants train a BiLSTM (concat) with a sigmoid head; per-step or one label per sequence.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["engine", "fit", "tutorial-fit", "torch"])
    parser.add_argument("--backend", default="tensorflow")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--timesteps", type=int, default=10)
    parser.add_argument("--features", type=int, default=1)
    parser.add_argument("--units", type=int, default=20)
    parser.add_argument("--task", default="per-step", choices=["per-step", "sequence"])
    parser.add_argument("--steps", type=int, default=1000, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--copies", type=int, default=1, help="engine: runs trained together as one program")
    parser.add_argument("--xla", default="auto", choices=["auto", "on", "off"], help="engine on TensorFlow")
    return parser.parse_args()


def data(args, steps: int):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((steps, args.batch, args.timesteps, args.features), dtype=np.float32)
    labels = (np.cumsum(x.sum(axis=-1), axis=-1) >= args.timesteps * args.features / 4).astype(np.int32)
    y = labels if args.task == "per-step" else labels[..., -1:]
    return x, y


def engine(args) -> dict:
    """bilstm's engine training ``--copies`` runs as one program (what `bilstm train` runs for
    one, `bilstm compare` for many); ms per step of all copies, and per copy-step."""
    import numpy as np

    from bilstm_cli import backend

    backend.select(args.backend)
    from bilstm_cli.config.schema import ModelSettings
    from bilstm_cli.data.batches import Batches
    from bilstm_cli.data.spec import ModelSpec
    from bilstm_cli.device import select_device
    from bilstm_cli.engine import for_backend
    from bilstm_cli.engine.base import Program
    from bilstm_cli.engine.network import Network, Segment, Trunk
    from bilstm_cli.engine.optimizers import OptimizerSettings

    device = select_device(args.device)
    module = for_backend()
    spec = ModelSpec(args.features, 2, args.task)
    settings = ModelSettings(units=args.units)
    trunk = Trunk("lstm", args.units, 1, args.features, 2, args.task)
    setting = {"auto": "auto", "on": True, "off": False}[args.xla]
    xla = module.OFFER.always_xla or module.use_xla(
        setting, device.kind, args.batch, args.timesteps, trunk, args.copies
    )
    network = Network(
        trunk, [Segment("bilstm", None, settings.merge, args.copies)], module.time_loop(args.timesteps, xla)
    )
    program = Program(
        network,
        spec,
        OptimizerSettings(),
        (args.batch, args.timesteps, args.features),
        tuple(range(args.copies)),
        args.steps,
    )
    trainer = module.engine_class(1)(
        program, list(range(args.copies)), [0.001] * args.copies, jit_compile=xla, device=device
    )
    compile_seconds = trainer.compile()
    x, y = data(args, args.steps)
    ones = np.ones(y.shape, np.float32)
    lengths = np.full(x.shape[:2], args.timesteps, np.int32)
    batches = [Batches(x, lengths, y, ones, ones)] * args.copies
    trainer.train(batches)  # warm
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        trainer.train(batches)
        times.append((time.perf_counter() - started) / args.steps)
    per_step = 1000 * statistics.median(times)
    return {
        "ms_per_step": per_step,
        "ms_per_copy_step": per_step / args.copies,
        "copies": args.copies,
        "compile_seconds": compile_seconds,
        "xla": xla,
    }


def keras_model(args):
    from bilstm_cli import backend

    backend.select(args.backend)
    from bilstm_cli.backend import keras

    keras.utils.set_random_seed(0)
    layers = [
        keras.Input((args.timesteps, args.features)),
        keras.layers.Bidirectional(keras.layers.LSTM(args.units, return_sequences=args.task == "per-step")),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
    model = keras.Sequential(layers)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def fit(args) -> dict:
    """Plain `model.fit` over a dataset of `steps` batches (Keras compiles its own train step)."""
    model = keras_model(args)
    x, y = data(args, args.steps)
    x = x.reshape(-1, args.timesteps, args.features)
    y = y.reshape(-1, *y.shape[2:])
    started = time.perf_counter()
    model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, shuffle=False)  # compile + warm
    compile_seconds = time.perf_counter() - started
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, shuffle=False)
        times.append((time.perf_counter() - started) / args.steps)
    return {"ms_per_step": 1000 * statistics.median(times), "compile_seconds": compile_seconds}


def tutorial_fit(args) -> dict:
    """The tutorial: a fresh sequence, one `model.fit(batch_size=1)` per step."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from tutorial_common import get_sequence

    model = keras_model(args)
    times = []
    for _ in range(args.steps):
        X, y = get_sequence(args.timesteps)
        started = time.perf_counter()
        model.fit(X, y, epochs=1, batch_size=1, verbose=0)
        times.append(time.perf_counter() - started)
    return {"ms_per_step": 1000 * statistics.median(times[10:])}  # steady state: the first calls trace


def torch_eager(args) -> dict:
    try:
        import torch
    except ImportError:
        return {"ms_per_step": None, "note": "PyTorch is not installed"}
    torch.manual_seed(0)
    device = "cuda" if args.device.startswith("gpu") or (args.device == "auto" and torch.cuda.is_available()) else "cpu"

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(args.features, args.units, batch_first=True, bidirectional=True)
            self.head = torch.nn.Linear(2 * args.units, 1)

        def forward(self, x):
            outputs, (hidden, _) = self.lstm(x)
            if args.task == "per-step":
                return torch.sigmoid(self.head(outputs))
            return torch.sigmoid(self.head(torch.cat([hidden[0], hidden[1]], dim=-1)))

    model = Model().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    loss_function = torch.nn.BCELoss()
    x, y = data(args, args.steps)
    x = torch.from_numpy(x).to(device)
    y = torch.from_numpy(y).float().to(device)
    if args.task == "per-step":
        y = y[..., None]

    def one_pass() -> float:
        started = time.perf_counter()
        for step in range(args.steps):
            optimizer.zero_grad()
            loss = loss_function(model(x[step]), y[step])
            loss.backward()
            optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - started) / args.steps

    one_pass()  # warm (cuDNN plans, allocator)
    times = [one_pass() for _ in range(args.repeats)]
    return {"ms_per_step": 1000 * statistics.median(times), "torch": torch.__version__, "device": device}


def main() -> None:
    args = arguments()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    measure = {"engine": engine, "fit": fit, "tutorial-fit": tutorial_fit, "torch": torch_eager}[args.what]
    print(json.dumps({"what": args.what, "backend": args.backend, **measure(args)}))


if __name__ == "__main__":
    main()
