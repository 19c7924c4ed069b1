"""``bilstm tune``: search spaces, the Optuna study, trials, the confirmation and its files."""
