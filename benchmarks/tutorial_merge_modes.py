"""Faithful Keras 3 port of the tutorial's merge-mode comparison (sum, mul, ave, concat; one
run of 250 one-sequence epochs each; a line plot of the per-epoch training loss).

Keras 3 changes only: ``input_shape=`` becomes an ``Input`` layer, and the plot is saved to
a file instead of ``pyplot.show()`` (no display here).
Usage: python benchmarks/tutorial_merge_modes.py [EPOCHS] [PLOT.png]
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
from keras.layers import LSTM, Bidirectional, Dense, Input, TimeDistributed  # noqa: E402
from keras.models import Sequential  # noqa: E402
from matplotlib import pyplot  # noqa: E402
from pandas import DataFrame  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from tutorial_common import get_sequence  # noqa: E402

EPOCHS = int(sys.argv[1]) if len(sys.argv) > 1 else 250
PLOT = sys.argv[2] if len(sys.argv) > 2 else os.devnull


def get_bi_lstm_model(n_timesteps, mode):
    model = Sequential()
    model.add(Input((n_timesteps, 1)))
    model.add(Bidirectional(LSTM(20, return_sequences=True), merge_mode=mode))
    model.add(TimeDistributed(Dense(1, activation="sigmoid")))
    model.compile(loss="binary_crossentropy", optimizer="adam")
    return model


def train_model(model, n_timesteps):
    loss = list()
    for _ in range(EPOCHS):
        # generate new random sequence
        X, y = get_sequence(n_timesteps)
        # fit model for one epoch on this sequence
        hist = model.fit(X, y, epochs=1, batch_size=1, verbose=0)
        loss.append(hist.history["loss"][0])
    return loss


n_timesteps = 10
results = DataFrame()
for mode in ["sum", "mul", "ave", "concat"]:
    model = get_bi_lstm_model(n_timesteps, mode)
    results["bilstm_" + mode] = train_model(model, n_timesteps)
# line plot of results
results.plot()
pyplot.savefig(PLOT, format="png")
print(results.tail(1).to_string())
