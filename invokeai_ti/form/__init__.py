"""The keyboard-driven form (npyscreen) and what it keeps between runs: preferences, the GPUs it offers."""
