"""Pair-classification metrics as mteb 2.x: best-threshold accuracy and F1, and average precision.

Thresholds never split tied scores (mteb's rule), so the input order cannot change a metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from e5kit.eval.metrics import paired_embeddings


def _sorted_rows(scores: Sequence[float], labels: Sequence[int], higher_is_similar: bool
                 ) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or s.shape != y.shape or len(s) == 0:
        raise ValueError(f"scores and labels must be non-empty, 1-D, equally long; "
                         f"got {s.shape} and {y.shape}")
    if not set(np.unique(y).tolist()) <= {0, 1}:
        raise ValueError(f"labels must be 0 or 1, got values {sorted(set(np.unique(y).tolist()))[:5]}")
    order = np.argsort(-s if higher_is_similar else s, kind="stable")
    return s[order], y[order].astype(int)


def best_accuracy(scores: Sequence[float], labels: Sequence[int], *, higher_is_similar: bool = True
                  ) -> tuple[float, float]:
    """(best accuracy, threshold) when pairs above the threshold are called positive."""
    s, y = _sorted_rows(scores, labels, higher_is_similar)
    best, threshold = 0.0, -1.0
    positives_so_far, remaining_negatives = 0, int(np.sum(y == 0))
    for i in range(len(s) - 1):
        if y[i] == 1:
            positives_so_far += 1
        else:
            remaining_negatives -= 1
        if s[i] == s[i + 1]:
            continue
        acc = (positives_so_far + remaining_negatives) / len(y)
        if acc > best:
            best, threshold = acc, float((s[i] + s[i + 1]) / 2)
    return best, threshold


def best_f1(scores: Sequence[float], labels: Sequence[int], *, higher_is_similar: bool = True
            ) -> tuple[float, float, float, float]:
    """(best F1, its precision, its recall, threshold)."""
    s, y = _sorted_rows(scores, labels, higher_is_similar)
    best = (0.0, 0.0, 0.0, 0.0)
    correct, total_pos = 0, int(y.sum())
    for i in range(len(s) - 1):
        correct += int(y[i] == 1)
        if s[i] == s[i + 1] or correct == 0:
            continue
        precision, recall = correct / (i + 1), correct / total_pos
        f1 = 2 * precision * recall / (precision + recall)
        if f1 > best[0]:
            best = (f1, precision, recall, float((s[i] + s[i + 1]) / 2))
    return best


def pair_metrics(scores: Sequence[float], labels: Sequence[int], *, higher_is_similar: bool = True
                 ) -> dict[str, float]:
    """accuracy, f1, precision, recall (best thresholds) and ap for one score function."""
    from sklearn.metrics import average_precision_score

    acc, _ = best_accuracy(scores, labels, higher_is_similar=higher_is_similar)
    f1, precision, recall, _ = best_f1(scores, labels, higher_is_similar=higher_is_similar)
    sign = 1.0 if higher_is_similar else -1.0
    ap = average_precision_score(np.asarray(labels, dtype=int), sign * np.asarray(scores, dtype=np.float64))
    return {"accuracy": float(acc), "f1": float(f1), "precision": float(precision), "recall": float(recall),
            "ap": float(ap)}


def pair_scores(emb1: np.ndarray, emb2: np.ndarray, labels: Sequence[int]) -> dict[str, float]:
    """Metrics for cosine, dot, euclidean and manhattan scores, plus max_<metric> over them."""
    a, b, an, bn = paired_embeddings(emb1, emb2)
    functions = {
        "cosine": (np.sum(an * bn, axis=1), True),
        "dot": (np.sum(a * b, axis=1), True),
        "euclidean": (np.linalg.norm(a - b, axis=1), False),
        "manhattan": (np.abs(a - b).sum(axis=1), False),
    }
    out: dict[str, float] = {}
    for name, (values, higher) in functions.items():
        for metric, value in pair_metrics(values, labels, higher_is_similar=higher).items():
            out[f"{name}_{metric}"] = value
    for metric in ("accuracy", "f1", "precision", "recall", "ap"):
        out[f"max_{metric}"] = max(out[f"{name}_{metric}"] for name in functions)
    return out
