"""bilstm: train, evaluate and compare LSTM / BiLSTM sequence classifiers from the shell."""

__version__ = "0.1.0"
