"""Losses, one per file, each citing its equation in the paper."""
