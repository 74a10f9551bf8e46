"""GuardStream benchmarks: ``python -m loadtest {throughput,latency,burst,engine} --json``.

Each prints one JSON object with a ratio against a baseline measured in the same
run. These are benchmarks, not tests: nothing here asserts a speed.
"""
