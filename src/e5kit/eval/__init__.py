"""Evaluation: BEIR retrieval and MTEB-style tasks with mteb 2.x definitions, BM25 baseline, reports.

    from e5kit.eval import evaluate
    results = evaluate("path/to/model", ["scifact", "stsbenchmark"], output="results")

Layout: datasets.py (readers), registry.py (named datasets), tasks/ (task types, the role of each input,
one module per type), models.py (dense E5 / BM25), metrics/ (no model code),
runner.py (JSON results), report.py (tables, chart), mteb_adapter.py (E5 inside mteb).
"""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate", "get_dataset", "REGISTRY"]


def __getattr__(name: str) -> Any:
    if name == "evaluate":
        from e5kit.eval.runner import evaluate

        return evaluate
    if name in ("get_dataset", "REGISTRY"):
        from e5kit.eval import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'e5kit.eval' has no attribute {name!r}")
