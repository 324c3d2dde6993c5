"""BM25 over the same corpus as a dense index, and hybrid (dense + BM25) ranking chosen per query.

The BM25 index lives in INDEX/bm25/ and is built from the corpus files the manifest names, read with
the same fields, so its ids are the dense index's ids in the same order (checked).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from e5kit.index.fusion import rrf, weighted
from e5kit.index.layout import IndexFormatError, read_json
from e5kit.index.store import DenseIndex
from e5kit.options import positive_int

log = logging.getLogger("e5kit")
METHODS = ("dense", "bm25", "rrf", "weighted")


def bm25_folder(dense: DenseIndex) -> Path:
    return dense.folder / "bm25"


def build_bm25(dense: DenseIndex, *, k1: float = 0.9, b: float = 0.4, overwrite: bool = False,
               show_progress: bool | None = None) -> Any:
    """Build and save a BM25 index over the dense index's corpus (same ids, same order).

    Parameters are checked before the corpus is read; a BM25 index that still matches the dense index
    is replaced only with `overwrite` (one made before the index grew is replaced)."""
    from e5kit.index.bm25 import META_FILE, BM25Index, check_params

    k1, b = check_params(k1, b)
    meta_path = bm25_folder(dense) / META_FILE
    if not overwrite and meta_path.is_file():
        meta = read_json(meta_path, "BM25 metadata")
        if meta.get("docs") == len(dense):
            raise IndexFormatError(
                f"{bm25_folder(dense)} exists (k1={meta.get('k1')}, b={meta.get('b')}); pass --overwrite "
                "(overwrite=True) to replace it")
    ids, texts = [], []
    for rec in dense.corpus_records():
        ids.append(rec.id)
        texts.append(rec.text)
    if len(ids) != len(dense) or ids != dense.ids_of(range(len(dense))):
        raise IndexFormatError(
            f"the corpus files changed since {dense.folder} was built; rebuild the index first"
        )
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    index = BM25Index.build(ids, texts, k1=k1, b=b, show_progress=show_progress)
    index.save(bm25_folder(dense))
    return index


@dataclass(frozen=True)
class FusedHit:
    rank: int
    score: float
    id: str


class HybridSearcher:
    """Dense, BM25, or their fusion (RRF or weighted), selectable per query.

    `alpha` weighs dense against BM25 (alpha * dense + (1 - alpha) * bm25, for both fusions);
    `depth` is how many results of each system are fused. `instruction`: an instruct model's task description,
    put into the prompt of every query this searcher encodes.
    """

    def __init__(self, dense: DenseIndex, bm25: Any, model: Any, instruction: str | None = None) -> None:
        if len(bm25.ids) != len(dense):
            raise IndexFormatError(
                f"the BM25 index has {len(bm25.ids)} documents, the dense index {len(dense)}"
            )
        dense.check_model(model)
        self.dense, self.bm25, self.model, self.instruction = dense, bm25, model, instruction

    @classmethod
    def open(cls, dense: DenseIndex, model: Any, instruction: str | None = None) -> HybridSearcher:
        from e5kit.index.bm25 import BM25Index

        folder = bm25_folder(dense)
        if not folder.is_dir():
            raise IndexFormatError(
                f"{dense.folder} has no BM25 index; make one with `e5kit index bm25 {dense.folder}`"
            )
        return cls(dense, BM25Index.load(folder), model, instruction)

    def search(
        self,
        queries: Sequence[str],
        k: int = 10,
        *,
        method: str | Sequence[str] = "rrf",
        alpha: float = 0.5,
        depth: int = 100,
        rrf_k: float = 60.0,
        vectors: str = "float",
        show_progress: bool | None = None,
    ) -> list[list[FusedHit]]:
        """Ranked hits per query; `method` is one name for all queries or one per query."""
        queries = [queries] if isinstance(queries, str) else list(queries)
        methods = [method] * len(queries) if isinstance(method, str) else list(method)
        if len(methods) != len(queries):
            raise ValueError(f"got {len(methods)} methods for {len(queries)} queries")
        for m in methods:
            if m not in METHODS:
                raise ValueError(f"search method {m!r} is not one of {', '.join(METHODS)}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        positive_int("k", k)
        depth = max(depth, k)
        out: list[list[FusedHit]] = [[] for _ in queries]
        need_dense = [i for i, m in enumerate(methods) if m != "bm25"]
        need_bm25 = [i for i, m in enumerate(methods) if m != "dense"]
        dense_res: dict[int, tuple[list[str], np.ndarray]] = {}
        bm25_res: dict[int, tuple[list[str], np.ndarray]] = {}
        if need_dense:
            q = self.model.encode_queries(
                [queries[i] for i in need_dense],
                normalize=self.dense.settings.normalize,
                show_progress=show_progress,
                instruction=self.instruction,
            )
            scores, rows = self.dense.search_vectors(q, depth, vectors=vectors)
            for i, s, r in zip(need_dense, scores, rows, strict=True):
                dense_res[i] = (self.dense.ids_of(r), s)
        if need_bm25:
            scores, ids = self.bm25.search(
                [queries[i] for i in need_bm25], depth, show_progress=show_progress
            )
            for i, s, r in zip(need_bm25, scores, ids, strict=True):
                bm25_res[i] = (r, s)
        for i, m in enumerate(methods):
            if m in ("dense", "bm25"):
                ids, s = (dense_res if m == "dense" else bm25_res)[i]
                fused = list(zip(ids, (float(x) for x in s), strict=True))[:k]
            elif m == "rrf":
                fused = rrf([dense_res[i][0], bm25_res[i][0]], k=rrf_k, weights=[alpha, 1 - alpha], top=k)
            else:
                fused = weighted([dense_res[i], bm25_res[i]], weights=[alpha, 1 - alpha], top=k)
            out[i] = [FusedHit(r + 1, sc, doc) for r, (doc, sc) in enumerate(fused)]
        return out
