"""Using a trained model: loading it, checking input against it, predicting, scoring."""
