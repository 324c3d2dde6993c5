"""Exact top-k by inner product over blocks of a corpus: memory bounded by the block, not the corpus."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from e5kit.options import positive_int

DEFAULT_BLOCK = 65536


def _merge(
    best_s: np.ndarray, best_i: np.ndarray, s: np.ndarray, i: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the k best of two candidate sets per row; ties go to the smaller corpus index."""
    all_s = np.concatenate([best_s, s], axis=1)
    all_i = np.concatenate([best_i, i], axis=1)
    if all_s.shape[1] > k:
        part = np.argpartition(-all_s, k - 1, axis=1)[:, :k]
        all_s = np.take_along_axis(all_s, part, axis=1)
        all_i = np.take_along_axis(all_i, part, axis=1)
    order = np.lexsort((all_i, -all_s), axis=1)
    return np.take_along_axis(all_s, order, axis=1), np.take_along_axis(all_i, order, axis=1)


def topk_blocks(queries: np.ndarray, blocks: Iterable[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k scores and global row indices (q, k) of `queries @ corpus.T`, corpus given as row blocks.

    Rows fewer than k in the whole corpus give fewer columns. Scores are float32, best first.
    """
    positive_int("k", k)
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    best_s = np.empty((q.shape[0], 0), dtype=np.float32)
    best_i = np.empty((q.shape[0], 0), dtype=np.int64)
    offset = 0
    for block in blocks:
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[1] != q.shape[1]:
            raise ValueError(f"corpus block of shape {block.shape} does not match query dim {q.shape[1]}")
        if len(block) == 0:
            continue
        scores = q @ block.astype(np.float32, copy=False).T  # (q, b)
        kk = min(k, scores.shape[1])
        part = (
            np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
            if scores.shape[1] > kk
            else np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        )
        s = np.take_along_axis(scores, part, axis=1)
        best_s, best_i = _merge(best_s, best_i, s, part.astype(np.int64) + offset, k)
        offset += len(block)
    return best_s, best_i


def topk(
    queries: np.ndarray, corpus: np.ndarray, k: int, block_size: int = DEFAULT_BLOCK
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k over an in-memory or memory-mapped (n, d) corpus, scanned in blocks."""
    return topk_blocks(queries, (corpus[s : s + block_size] for s in range(0, len(corpus), block_size)), k)
