"""Training: the epoch loop (backend-neutral), the compiled multi-step call of each backend,
and the session that ties a config's model, data and engine together."""
