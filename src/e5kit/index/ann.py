"""Approximate search with FAISS (flat, IVF-PQ, HNSW) built from an index's shards, parameters recorded.

Inner product on the stored (unit) vectors, so scores are cosines as in exact search. IVF-PQ
re-scores its `refine` x k candidates exactly from the memory-mapped float shards, which buys back
the recall that product quantization loses for a few row reads per query.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from e5kit.index.layout import IndexFormatError
from e5kit.index.store import DenseIndex
from e5kit.io.atomic import atomic_write_json

ANN_KINDS = ("flat", "ivfpq", "hnsw")
# Build-time parameters, then search-time ones (overridable per search). None: chosen from the data size.
DEFAULTS: dict[str, dict[str, Any]] = {
    "flat": {},
    "ivfpq": {"nlist": None, "m": None, "nbits": 8, "train_size": 100_000, "nprobe": 32, "refine": 50},
    "hnsw": {"M": 32, "ef_construction": 100, "ef_search": 128},
}
SEARCH_PARAMS = {"nprobe", "refine", "ef_search"}


def _faiss():
    import logging

    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # it logs its CPU-feature probing at INFO
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss is in the index extra
        raise IndexFormatError("FAISS is not installed; pip install 'e5kit[index]' (faiss-cpu)") from exc
    return faiss


def _resolve(kind: str, params: dict[str, Any], n: int, dim: int) -> dict[str, Any]:
    if kind not in ANN_KINDS:
        raise ValueError(f"ANN kind {kind!r} is not one of {', '.join(ANN_KINDS)}")
    unknown = set(params) - set(DEFAULTS[kind])
    if unknown:
        raise ValueError(f"option(s) {sorted(unknown)} do not apply to {kind}; allowed: {sorted(DEFAULTS[kind])}")
    p = {**DEFAULTS[kind], **{k: v for k, v in params.items() if v is not None}}
    if kind == "ivfpq":
        if p["nlist"] is None:
            p["nlist"] = max(1, min(int(4 * math.sqrt(n)), n // 39))
        if p["m"] is None:
            p["m"] = next(m for m in (dim // 8, dim // 4, dim // 2, dim, 1) if m >= 1 and dim % m == 0)
        if dim % p["m"]:
            raise ValueError(f"ivfpq m={p['m']} must divide the dimension {dim}")
        p["nbits"] = min(int(p["nbits"]), max(1, int(math.log2(max(n, 2)))))
    return p


@dataclass
class AnnIndex:
    """A FAISS index over a DenseIndex's rows (same order), with the parameters that made it."""

    kind: str
    params: dict[str, Any]
    faiss_index: Any
    dense: DenseIndex
    build_seconds: float = 0.0

    @staticmethod
    def paths(dense: DenseIndex, kind: str) -> tuple[Path, Path]:
        folder = dense.folder / "ann"
        return folder / f"{kind}.faiss", folder / f"{kind}.json"

    def save(self) -> Path:
        index_path, meta_path = self.paths(self.dense, self.kind)
        index_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_path.with_name(f".{index_path.name}.tmp")
        _faiss().write_index(self.faiss_index, str(tmp))
        tmp.replace(index_path)
        complete = self.dense.manifest["complete"]
        atomic_write_json(
            meta_path,
            {
                "kind": self.kind,
                "params": self.params,
                "docs": len(self.dense),
                "corpus_fingerprint": complete["corpus_fingerprint"],
                "settings_key": self.dense.settings.key(),
                "build_seconds": round(self.build_seconds, 3),
                "faiss_version": _faiss().__version__,
            },
        )
        return index_path

    @classmethod
    def load(cls, dense: DenseIndex, kind: str) -> AnnIndex:
        index_path, meta_path = cls.paths(dense, kind)
        if not meta_path.is_file() or not index_path.is_file():
            raise IndexFormatError(
                f"{dense.folder} has no {kind} index; make one with "
                f"`e5kit index ann {dense.folder} --kind {kind}`"
            )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if (meta["docs"], meta["corpus_fingerprint"], meta["settings_key"]) != (
            len(dense),
            dense.manifest["complete"]["corpus_fingerprint"],
            dense.settings.key(),
        ):
            raise IndexFormatError(
                f"{index_path} is stale (built for another state of the index); rebuild it"
            )
        return cls(kind, meta["params"], _faiss().read_index(str(index_path)), dense, meta["build_seconds"])

    def search(self, queries: np.ndarray, k: int, **overrides: Any) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) per query; search parameters (nprobe, refine, ef_search) may be overridden."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        bad = set(overrides) - (SEARCH_PARAMS & set(self.params))
        if bad:
            raise ValueError(f"{self.kind} has no search parameter(s) {sorted(bad)}")
        p = {**self.params, **{k_: v for k_, v in overrides.items() if v is not None}}
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self.dense.dim:
            raise ValueError(
                f"query embeddings of shape {q.shape} do not match the index dim {self.dense.dim}"
            )
        faiss = _faiss()
        kk = min(k, len(self.dense))
        if self.kind == "hnsw":
            self.faiss_index.hnsw.efSearch = int(max(p["ef_search"], kk))
        if self.kind != "ivfpq":
            return self.faiss_index.search(q, kk)
        faiss.extract_index_ivf(self.faiss_index).nprobe = int(p["nprobe"])
        depth = min(len(self.dense), kk * max(1, int(p["refine"])))
        _, cand = self.faiss_index.search(q, depth)
        scores = np.einsum("qd,qkd->qk", q, self.dense.vectors(np.maximum(cand, 0)))  # exact re-scoring
        scores[cand < 0] = -np.inf
        order = np.lexsort((cand, -scores), axis=1)[:, :kk]
        return np.take_along_axis(scores, order, 1).astype(np.float32), np.take_along_axis(cand, order, 1)


def build_ann(dense: DenseIndex, kind: str, *, seed: int = 0, save: bool = True, **params: Any) -> AnnIndex:
    """Build (and save under INDEX/ann/) a FAISS index of `kind` from the dense index's float shards."""
    faiss = _faiss()
    n, d = len(dense), dense.dim
    p = _resolve(kind, params, n, d)
    start = time.perf_counter()
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, int(p["M"]), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(p["ef_construction"])
    else:
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFPQ(
            quantizer, d, int(p["nlist"]), int(p["m"]), int(p["nbits"]), faiss.METRIC_INNER_PRODUCT
        )
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(n, size=min(n, int(p["train_size"])), replace=False))
        index.cp.seed = seed
        index.train(np.ascontiguousarray(dense.vectors(rows)))
    for block in dense.blocks("float"):
        index.add(np.ascontiguousarray(block, dtype=np.float32))
    ann = AnnIndex(kind, p, index, dense, time.perf_counter() - start)
    if save:
        ann.save()
    return ann
