"""Side-by-side measurements that `e5kit bench` runs: kept out of the library stages users import.

measure.py (RSS, matmul peak, FLOP counts), checkpoints.py (random-weight checkpoints and synthetic
texts for speed runs), quality.py (quality per mode through e5kit.eval's own tasks), encode.py (the
encoding benchmark: runners, rows, the run), report.py (Markdown and JSON output).
"""
