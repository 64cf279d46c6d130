"""CloudBuffer's benchmarks (issue 5): `python -m bench [--quick]`, or `make bench`.

Seven figures, each against a baseline measured in the same run: push latency,
fan-out capacity, memory per socket, upload and download speed, interference,
and text posts per second. See docs/benchmarks.md for the latest results.
"""
