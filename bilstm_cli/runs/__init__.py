"""Run directories: creating them safely, atomic writes, checkpoints, reading runs back."""
