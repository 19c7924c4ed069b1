"""Everything people see: terminal output (Rich tables, plain lines, JSON lines) and plots."""
