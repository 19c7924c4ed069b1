"""The network: what the data dictates (spec), registered layers, and model building."""
