"""Metrics, separate from tasks (as in mteb): each takes labels/scores and returns a flat dict of floats.

retrieval.py (pytrec_eval), correlation.py (STS), classification.py, pair_classification.py; the shared
input check of the paired metrics (STS, pair classification) is here.
"""

from __future__ import annotations

import numpy as np


def paired_embeddings(emb1: np.ndarray, emb2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, a_unit, b_unit) in float64; a ValueError unless both are (n, d) arrays of one shape."""
    a = np.asarray(emb1, dtype=np.float64)
    b = np.asarray(emb2, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"embeddings must be two (n, d) arrays of one shape, got {a.shape} and {b.shape}")
    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a, b, an, bn
