"""Benchmark harness: WER, latency and concurrency, measured through a real server."""
