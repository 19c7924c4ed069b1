"""Sequences: the Dataset type, the generated task, file formats, labels, batches and the
protocols that feed training (online fresh sequences, or epochs over a file)."""
