"""Rank fusion of several result lists for one query: reciprocal rank fusion and weighted score fusion.

RRF (Cormack et al., SIGIR 2009): score(d) = sum_s w_s / (k + rank_s(d)), rank from 1, k = 60 by
default; it needs only ranks, so systems with incomparable scores (BM25, cosine) mix safely.
Weighted fusion: scores of each system are normalized per query (min-max by default, so a system's
best is 1 and the worst listed is 0; a document a system did not return counts as 0), then
combined as sum_s w_s * norm_s(d).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NORMALIZATIONS = ("minmax", "zscore", "none")


def _weights(weights: Sequence[float] | None, n: int) -> list[float]:
    if weights is None:
        return [1.0] * n
    w = [float(x) for x in weights]
    if len(w) != n or any(not np.isfinite(x) or x < 0 for x in w):
        raise ValueError(f"weights must be {n} finite non-negative numbers, got {list(weights)!r}")
    return w


def _ranked(scores: dict[str, float], order: dict[str, int], top: int | None) -> list[tuple[str, float]]:
    items = sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))
    return items[:top] if top is not None else items


def _tie_order(lists: Sequence[Sequence[str]], weights: Sequence[float]) -> dict[str, int]:
    """Position of each document for breaking ties: first appearance, heaviest-weighted system first.

    A system with weight 0 so decides nothing; equal weights keep the systems' given order.
    """
    order: dict[str, int] = {}
    for _, ids in sorted(zip(weights, lists, strict=True), key=lambda x: -x[0]):
        for doc in ids:
            order.setdefault(doc, len(order))
    return order


def rrf(
    rankings: Sequence[Sequence[str]],
    *,
    k: float = 60.0,
    weights: Sequence[float] | None = None,
    top: int | None = None,
) -> list[tuple[str, float]]:
    """Fuse ranked id lists (best first) by reciprocal rank; returns (id, score) best first.

    Ties keep the order in which the documents first appear across the lists, heaviest weight first.
    """
    if isinstance(rankings, (str, bytes)) or not rankings:
        raise ValueError("rrf needs a non-empty list of ranked id lists")
    if not k >= 0:
        raise ValueError(f"rrf k must be >= 0, got {k!r}")
    w = _weights(weights, len(rankings))
    fused: dict[str, float] = {}
    for ws, ids in zip(w, rankings, strict=True):
        for rank, doc in enumerate(ids, start=1):
            fused[doc] = fused.get(doc, 0.0) + ws / (k + rank)
    return _ranked(fused, _tie_order(rankings, w), top)


def _normalize(scores: np.ndarray, how: str) -> np.ndarray:
    if how == "none" or len(scores) == 0:
        return scores
    if how == "minmax":
        lo, hi = float(scores.min()), float(scores.max())
        return np.ones_like(scores) if hi == lo else (scores - lo) / (hi - lo)
    sd = float(scores.std())
    return np.zeros_like(scores) if sd == 0 else (scores - scores.mean()) / sd


def weighted(
    results: Sequence[tuple[Sequence[str], Sequence[float]]],
    *,
    weights: Sequence[float] | None = None,
    normalize: str = "minmax",
    top: int | None = None,
) -> list[tuple[str, float]]:
    """Fuse (ids, scores) lists by a weighted sum of per-query normalized scores; (id, score) best first."""
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize {normalize!r} is not one of {', '.join(NORMALIZATIONS)}")
    if isinstance(results, (str, bytes)) or not results:
        raise ValueError("weighted fusion needs a non-empty list of (ids, scores) pairs")
    w = _weights(weights, len(results))
    fused: dict[str, float] = {}
    for ws, (ids, scores) in zip(w, results, strict=True):
        s = np.asarray(scores, dtype=np.float64)
        if s.ndim != 1 or len(s) != len(ids):
            raise ValueError(
                f"each result needs as many scores as ids, got {len(ids)} ids and shape {s.shape}"
            )
        if not np.all(np.isfinite(s)):
            raise ValueError("scores must be finite")
        for doc, x in zip(ids, _normalize(s, normalize), strict=True):
            fused[doc] = fused.get(doc, 0.0) + ws * float(x)
        # documents this system did not return get 0 from it (the bottom of the min-max scale)
    order = _tie_order([ids for ids, _ in results], w)
    for doc in order:
        fused.setdefault(doc, 0.0)
    return _ranked(fused, order, top)
