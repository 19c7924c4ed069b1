"""One module per command: the core function each CLI command calls (no click, no printing)."""
