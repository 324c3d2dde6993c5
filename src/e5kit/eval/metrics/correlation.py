"""STS metrics as mteb 2.x: Pearson and Spearman between gold scores and each similarity."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from e5kit.eval.metrics import paired_embeddings


def correlations(gold: Sequence[float], predicted: Sequence[float]) -> tuple[float, float]:
    """(Pearson, Spearman) of two equally long score lists (2+ items); nan when either side is constant."""
    from scipy.stats import pearsonr, spearmanr

    g = np.asarray(gold, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if g.ndim != 1 or g.shape != p.shape:
        raise ValueError(f"gold and predicted must be 1-D and equally long, got {g.shape} and {p.shape}")
    if len(g) < 2:
        raise ValueError(f"correlation needs at least 2 pairs, got {len(g)}")
    if not np.all(np.isfinite(g)) or not np.all(np.isfinite(p)):
        raise ValueError("gold and predicted scores must be finite")
    if np.ptp(g) == 0 or np.ptp(p) == 0:  # undefined; mteb reports nan too (e.g. a collapsed model)
        return float("nan"), float("nan")
    return float(pearsonr(g, p)[0]), float(spearmanr(g, p)[0])


def sts_scores(gold: Sequence[float], emb1: np.ndarray, emb2: np.ndarray) -> dict[str, float]:
    """cosine/manhattan/euclidean Pearson and Spearman (distances negated), as mteb's STS evaluator."""
    a, b, an, bn = paired_embeddings(emb1, emb2)
    sims = {
        "cosine": np.sum(an * bn, axis=1),
        "manhattan": -np.abs(a - b).sum(axis=1),
        "euclidean": -np.linalg.norm(a - b, axis=1),
    }
    out: dict[str, float] = {}
    for name, values in sims.items():
        out[f"{name}_pearson"], out[f"{name}_spearman"] = correlations(gold, values)
    return out
