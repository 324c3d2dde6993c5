"""benchmarks/bench_attention.py: the side-by-side table of e5kit's attention kernels and torch's path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_attention.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_attention", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lengths_spec(bench):
    assert bench.parse_lengths("3x2,5") == [3, 3, 5]
    for bad in ("", "0", "4x0", "-1", "ax2"):
        with pytest.raises(ValueError):
            bench.parse_lengths(bad)


def test_rows_for_both_dtypes(bench):
    from e5kit.model import native_attention as na

    rows = bench.run([7, 3, 1], heads=2, head_dim=32, reps=1)
    assert len(rows) == 2 and rows[0].startswith("| bfloat16 | 32 |") and rows[1].startswith("| float32 | 32 |")
    for line, dtype in zip(rows, ("bfloat16", "float32"), strict=True):
        import torch

        reason = na.status(getattr(torch, dtype))
        assert ("×" in line) if reason is None else (f"off: {reason}" in line)
    assert na.usable is not None and na.usable.__name__ == "usable"  # the switch-off for torch's timing is undone
