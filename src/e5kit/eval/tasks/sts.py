"""Semantic textual similarity: cosine between the two sentences vs gold scores (mteb 2.x).

Both sentences get the query prompt (symmetric task). Each distinct sentence is embedded once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from e5kit.eval.metrics.correlation import sts_scores
from e5kit.eval.tasks.base import TaskOutput, require_dense

MAIN_SCORE = "cosine_spearman"


def embed_pairs(model: Any, s1: Sequence[str], s2: Sequence[str], role: str) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of both sides, encoding each distinct sentence once."""
    unique = list(dict.fromkeys([*s1, *s2]))
    position = {t: i for i, t in enumerate(unique)}
    emb = model.encode(unique, role)
    return emb[[position[t] for t in s1]], emb[[position[t] for t in s2]]


def evaluate(model: Any, data: tuple[list[str], list[str], list[float]]) -> TaskOutput:
    """Pearson and Spearman of cosine, manhattan and euclidean similarity; main cosine Spearman."""
    require_dense(model, "sts")
    s1, s2, gold = data
    if not (len(s1) == len(s2) == len(gold)) or len(s1) < 2:
        raise ValueError(f"STS needs 2+ aligned pairs, got {len(s1)}/{len(s2)}/{len(gold)}")
    e1, e2 = embed_pairs(model, s1, s2, "query")
    scores = sts_scores(gold, e1, e2)
    scores["pearson"], scores["spearman"] = scores["cosine_pearson"], scores["cosine_spearman"]
    return TaskOutput(MAIN_SCORE, scores, {"pairs": len(s1), "sentences": len(set(s1) | set(s2))})
