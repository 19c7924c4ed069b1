"""A plain Keras BiLSTM sequence classifier, written the obvious way: the reference for `bilstm`.

Per-feature standardisation with the training mean/std, Bidirectional(LSTM(64)) -> Dense(softmax),
Adam(1e-3), batch 32, 60 epochs, no validation, then accuracy on the TEST file. Variable-length
series are zero-padded after standardising and masked (Masking(0.0)).

A tiny standalone `.ts` reader (not bilstm's), so the baseline shares no code with the tool it
is compared against.

Usage: python benchmarks/keras_baseline.py TRAIN.ts TEST.ts [--seed S] [--epochs 60] [--json]
Prints "accuracy A  seconds S" (or one JSON object with --json); seconds = fit + evaluate, and
total_seconds from start-up (imports included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

STARTED = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def read_ts(path: str, classes: list[str] | None = None) -> tuple[list[np.ndarray], list[str], list[str]]:
    """(series (T_i, F) each, labels, class names from @classLabel) of a labelled .ts file."""
    series, labels, in_data = [], [], False
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line or line[0] in "#%":
                continue
            if not in_data:
                words = line.split()
                if words[0].lower() == "@classlabel" and classes is None:
                    classes = words[2:]
                in_data = words[0].lower() == "@data"
                continue
            *dims, label = line.split(":")
            series.append(np.array([[float(v) for v in dim.split(",")] for dim in dims], dtype=np.float32).T)
            labels.append(label.strip())
    return series, labels, classes


def pad(series: list[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(series), length, series[0].shape[1]), dtype=np.float32)
    for i, s in enumerate(series):
        out[i, : len(s)] = s
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="plain Keras BiLSTM-64 baseline on a .ts TRAIN/TEST pair")
    parser.add_argument("train")
    parser.add_argument("test")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    train_x, train_labels, classes = read_ts(args.train)
    test_x, test_labels, _ = read_ts(args.test, classes)
    index = {name: k for k, name in enumerate(classes)}
    y_train = np.array([index[label] for label in train_labels])
    y_test = np.array([index[label] for label in test_labels])

    steps = np.concatenate(train_x)  # every real training step, (sum T_i, F)
    mean, std = steps.mean(axis=0), steps.std(axis=0)
    std[std == 0] = 1.0
    train_x = [(s - mean) / std for s in train_x]
    test_x = [(s - mean) / std for s in test_x]
    lengths = {len(s) for s in train_x + test_x}
    variable = len(lengths) > 1
    x_train, x_test = pad(train_x, max(lengths)), pad(test_x, max(lengths))

    import keras

    keras.utils.set_random_seed(args.seed)
    layers = [keras.Input(shape=(None, x_train.shape[2]))]
    if variable:
        layers.append(keras.layers.Masking(mask_value=0.0))
    layers += [
        keras.layers.Bidirectional(keras.layers.LSTM(args.units)),
        keras.layers.Dense(len(classes), activation="softmax"),
    ]
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    fit_started = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    now = time.perf_counter()
    result = {
        "train": args.train,
        "test": args.test,
        "seed": args.seed,
        "epochs": args.epochs,
        "accuracy": float(accuracy),
        "seconds": round(now - fit_started, 2),
        "total_seconds": round(now - STARTED, 2),
        "variable_length": variable,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"accuracy {accuracy:.4f}  seconds {result['seconds']:.1f}  (total {result['total_seconds']:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
