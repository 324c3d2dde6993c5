"""Pair classification (paraphrase detection) as mteb 2.x: AP of cosine/dot/euclidean/manhattan.

Both sentences get the query prompt; main score is the best AP over the score functions.
"""

from __future__ import annotations

from typing import Any

from e5kit.eval.metrics.pair_classification import pair_scores
from e5kit.eval.tasks.base import TaskOutput, require_dense
from e5kit.eval.tasks.sts import embed_pairs

MAIN_SCORE = "max_ap"


def evaluate(model: Any, data: tuple[list[str], list[str], list[float]]) -> TaskOutput:
    require_dense(model, "pair_classification")
    s1, s2, labels = data
    ints = [int(y) for y in labels]
    if any(y != i for y, i in zip(labels, ints, strict=True)) or set(ints) - {0, 1}:
        raise ValueError("pair classification labels must be 0 or 1")
    if len(set(ints)) < 2:
        raise ValueError("pair classification needs both positive and negative pairs")
    e1, e2 = embed_pairs(model, s1, s2, "query")
    return TaskOutput(MAIN_SCORE, pair_scores(e1, e2, ints), {"pairs": len(s1), "positives": sum(ints)})
