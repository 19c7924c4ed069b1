"""Faithful Keras 3 port of the tutorial's 1000-epoch Bidirectional LSTM listing.

Changes from the 2017 listing, all forced by Keras 3: ``input_shape=`` becomes an ``Input``
layer, and ``predict_classes`` (removed) becomes ``predict(...) > 0.5``. Like the tutorial it
prints one line per fit (verbose=2). At the end it prints the accuracy on 1000 fresh
sequences (not in the tutorial: the benchmark needs an accuracy to compare).
Usage: python benchmarks/tutorial_bilstm.py [EPOCHS]
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras.layers import LSTM, Bidirectional, Dense, Input, TimeDistributed  # noqa: E402
from keras.models import Sequential  # noqa: E402
from numpy import concatenate, mean  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from tutorial_common import get_sequence  # noqa: E402

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
# define problem properties
n_timesteps = 10
# define LSTM
model = Sequential()
model.add(Input((n_timesteps, 1)))
model.add(Bidirectional(LSTM(20, return_sequences=True)))
model.add(TimeDistributed(Dense(1, activation="sigmoid")))
model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
# train LSTM
for epoch in range(epochs):
    # generate new random sequence
    X, y = get_sequence(n_timesteps)
    # fit model for one epoch on this sequence
    model.fit(X, y, epochs=1, batch_size=1, verbose=2)
# evaluate LSTM
X, y = get_sequence(n_timesteps)
yhat = (model.predict(X, verbose=0) > 0.5).astype("int32")
for i in range(n_timesteps):
    print("Expected:", y[0, i], "Predicted", yhat[0, i])
# not in the tutorial: accuracy on 1000 fresh sequences, for the benchmark table
test = [get_sequence(n_timesteps) for _ in range(1000)]
X_test = concatenate([X for X, _ in test])
y_test = concatenate([y for _, y in test])
accuracy = mean((model.predict(X_test, verbose=0) > 0.5).astype("int32") == y_test)
print(f"ACCURACY {accuracy:.4f}")
