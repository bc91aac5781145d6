"""Peer servers the benchmark compares against, each run from its own virtual environment."""
