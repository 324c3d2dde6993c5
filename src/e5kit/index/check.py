"""`index check`: verify an index's files; measure each approximate method's recall@k vs exact."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from e5kit.index.ann import ANN_KINDS, AnnIndex
from e5kit.index.store import DenseIndex
from e5kit.options import positive_int


@dataclass(frozen=True)
class CheckRow:
    """One method's agreement with exact float search."""

    method: str
    recall: float  # tie-aware recall@k vs exact float search
    ms_per_query: float
    params: dict[str, Any] = field(default_factory=dict)


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of each exact top-k row set found in the approximate top-k (rows; -1 = none)."""
    approx, exact = np.atleast_2d(approx), np.atleast_2d(exact)
    if approx.shape[0] != exact.shape[0]:
        raise ValueError(f"approx and exact results differ in query count: {approx.shape} vs {exact.shape}")
    if exact.size == 0:
        return 1.0
    hits = [
        len(set(a[a >= 0].tolist()) & set(e.tolist())) / len(e) for a, e in zip(approx, exact, strict=True)
    ]
    return float(np.mean(hits))


def tie_aware_recall(
    dense: DenseIndex, queries: np.ndarray, approx: np.ndarray, exact_scores: np.ndarray, *, tol: float = 1e-5
) -> float:
    """Recall@k that counts a returned row as right when its true score reaches the exact k-th score.

    Equal vectors (duplicate documents) tie; which of them a method returns is arbitrary, so plain
    row-set recall would punish correct answers. True scores are recomputed from the float vectors.
    """
    if exact_scores.size == 0:
        return 1.0
    true = np.einsum("qd,qkd->qk", queries, dense.vectors(np.maximum(approx, 0)))
    good = (true >= exact_scores[:, -1:] - tol) & (approx >= 0)
    return float(np.mean(np.minimum(good.sum(axis=1), exact_scores.shape[1]) / exact_scores.shape[1]))


def sample_queries(dense: DenseIndex, n: int, *, seed: int = 0) -> np.ndarray:
    """Query-like vectors from the index itself: normalized means of two random stored vectors.

    Not stored rows as such, so no query trivially finds itself at rank 1.
    """
    positive_int("sample", n)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(dense), size=(n, 2))
    q = dense.vectors(rows).sum(axis=1)
    return q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)


def _timed(fn, *args, **kwargs) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def check_index(
    dense: DenseIndex,
    *,
    queries: np.ndarray | None = None,
    sample: int = 200,
    k: int = 10,
    methods: list[str] | None = None,
    verify: bool = True,
    seed: int = 0,
) -> list[CheckRow]:
    """Recall@k and speed of every quantized copy and saved FAISS index (or those in `methods`) vs exact.

    With `verify`, every shard file's checksum is checked first (raises on a corrupt file).
    """
    positive_int("k", k)  # before the (long) verification
    if queries is None:
        positive_int("sample", sample)
    if verify:
        dense.verify()
    q = (
        sample_queries(dense, sample, seed=seed)
        if queries is None
        else np.atleast_2d(queries).astype(np.float32)
    )
    available = [f"exact-{kind}" for kind in dense.settings.quantize] + [
        kind for kind in ANN_KINDS if AnnIndex.paths(dense, kind)[1].is_file()
    ]
    chosen = available if methods is None else methods
    unknown = set(chosen) - set(available)
    if unknown:
        raise ValueError(
            f"method(s) {sorted(unknown)} not in this index; available: {', '.join(available) or 'none'}"
        )
    (exact_scores, _), secs = _timed(dense.search_vectors, q, k)
    rows = [CheckRow("exact-float", 1.0, 1000 * secs / len(q), {"dtype": dense.settings.dtype})]
    for method in chosen:
        if method.startswith("exact-"):
            kind = method.split("-", 1)[1]
            (_, got), secs = _timed(dense.search_vectors, q, k, vectors=kind)
            rows.append(
                CheckRow(method, tie_aware_recall(dense, q, got, exact_scores), 1000 * secs / len(q), {})
            )
        else:
            ann = AnnIndex.load(dense, method)
            (_, got), secs = _timed(ann.search, q, k)
            rows.append(
                CheckRow(
                    f"faiss-{method}",
                    tie_aware_recall(dense, q, got, exact_scores),
                    1000 * secs / len(q),
                    ann.params,
                )
            )
    return rows
