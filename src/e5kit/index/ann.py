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

from e5kit.index.layout import IndexFormatError, read_json
from e5kit.index.store import DenseIndex
from e5kit.io.atomic import atomic_path, atomic_write_json
from e5kit.options import positive_int

ANN_KINDS = ("flat", "ivfpq", "hnsw")
# Build-time parameters, then search-time ones (overridable per search). None: chosen from the data size.
DEFAULTS: dict[str, dict[str, Any]] = {
    "flat": {},
    "ivfpq": {"nlist": None, "m": None, "nbits": None, "train_size": 100_000, "nprobe": None, "refine": 50},
    "hnsw": {"M": 32, "ef_construction": 100, "ef_search": 128},
}
SEARCH_PARAMS = {"nprobe", "refine", "ef_search"}
DEFAULT_NBITS = 8
DEFAULT_NPROBE = 32  # or nlist, when there are fewer lists
MAX_NBITS = 16  # 2**16 centroids per sub-quantizer: FAISS's IVF-PQ fast paths end there
MAX_M = 512  # HNSW links per node; each costs 8 bytes per document at level 0
MAX_EF = 100_000  # HNSW candidate list; FAISS allocates it per query
# Fixed ranges (low, high; None: no upper bound). Ranges that depend on the data are checked in `resolve_params`.
RANGES: dict[str, tuple[int, int | None]] = {
    "nlist": (1, None), "m": (1, None), "nbits": (1, MAX_NBITS), "train_size": (1, None), "nprobe": (1, None),
    "refine": (1, None), "M": (2, MAX_M), "ef_construction": (1, MAX_EF), "ef_search": (1, MAX_EF),
}


def _faiss():
    import logging

    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # it logs its CPU-feature probing at INFO
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss is in the index extra
        raise IndexFormatError("FAISS is not installed; pip install 'e5kit[index]' (faiss-cpu)") from exc
    return faiss


def _out_of_range(name: str, value: int, low: int, high: int | None, why: str = "") -> ValueError:
    allowed = f"{low}..{high}" if high is not None else f"{low}.."
    return ValueError(f"{name}={value} is out of range; allowed: {allowed}{f' ({why})' if why else ''}")


def check_param(name: str, value: Any, *, low: int | None = None, high: int | None = None,
                why: str = "") -> int:
    """`value` as an int within the range of ANN parameter `name` (its fixed range, or `low`/`high` where the
    data or another parameter narrows it); else a ValueError naming the value and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}")
    low = RANGES[name][0] if low is None else low
    high = RANGES[name][1] if high is None else high
    if value < low or (high is not None and value > high):
        raise _out_of_range(name, int(value), low, high, why)
    return int(value)


def check_params(kind: str, params: dict[str, Any]) -> dict[str, int]:
    """The given (non-None) parameters of `kind`, each checked against its range; no data needed."""
    if kind not in ANN_KINDS:
        raise ValueError(f"ANN kind {kind!r} is not one of {', '.join(ANN_KINDS)}")
    unknown = set(params) - set(DEFAULTS[kind])
    if unknown:
        raise ValueError(f"option(s) {sorted(unknown)} do not apply to {kind}; allowed: {sorted(DEFAULTS[kind])}")
    given = {k: check_param(k, v) for k, v in params.items() if v is not None and k != "ef_construction"}
    if params.get("ef_construction") is not None:
        m = given.get("M", DEFAULTS["hnsw"]["M"])
        given["ef_construction"] = check_param("ef_construction", params["ef_construction"], low=m, why=(
            f"at least M={m}: each new node picks its M links from that many candidates"))
    return given


def resolve_params(kind: str, params: dict[str, Any], n: int, dim: int) -> dict[str, Any]:
    """Every parameter of `kind` for n vectors of `dim`: the given ones checked (ranges that depend on the
    data included), the others chosen from the data size. Raises before any FAISS work."""
    given = check_params(kind, params)
    p = {**DEFAULTS[kind], **given}
    if kind == "hnsw" and p["ef_construction"] < p["M"]:  # the default 100 under a given M
        p["ef_construction"] = p["M"]
    if kind != "ivfpq":
        return p
    train = min(n, p["train_size"])
    if p["nlist"] is None:
        p["nlist"] = max(1, min(int(4 * math.sqrt(n)), n // 39, train))
    elif p["nlist"] > train:
        raise _out_of_range("nlist", p["nlist"], 1, train, f"at most one list per training vector: {n} documents, "
                            f"train_size {p['train_size']}")
    if p["nprobe"] is None:
        p["nprobe"] = min(DEFAULT_NPROBE, p["nlist"])
    elif p["nprobe"] > p["nlist"]:
        raise _out_of_range("nprobe", p["nprobe"], 1, p["nlist"], "at most nlist lists can be probed")
    if p["m"] is None:
        p["m"] = next(m for m in (dim // 8, dim // 4, dim // 2, dim, 1) if m >= 1 and dim % m == 0)
    elif dim % p["m"]:
        raise ValueError(f"m={p['m']} must divide the dimension {dim}; allowed: "
                         f"{', '.join(str(m) for m in range(1, dim + 1) if dim % m == 0)}")
    most = min(MAX_NBITS, int(math.log2(max(train, 2))))  # 2**nbits centroids need as many training vectors
    if p["nbits"] is None:
        p["nbits"] = min(DEFAULT_NBITS, most)
    elif p["nbits"] > most:
        raise _out_of_range("nbits", p["nbits"], 1, most, f"2**nbits centroids need as many training vectors; "
                            f"{train} are used")
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
        with atomic_path(index_path) as tmp:  # FAISS writes through fopen: the file follows the umask
            _faiss().write_index(self.faiss_index, str(tmp))
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
    def saved_meta(cls, dense: DenseIndex, kind: str) -> dict[str, Any] | None:
        """The saved `kind` index's metadata, or None when there is none."""
        index_path, meta_path = cls.paths(dense, kind)
        if not meta_path.is_file() or not index_path.is_file():
            return None
        return read_json(meta_path, f"{kind} index metadata")

    @staticmethod
    def is_current(dense: DenseIndex, meta: dict[str, Any]) -> bool:
        """Whether saved metadata belongs to the dense index as it is now (same documents and settings)."""
        return (meta.get("docs"), meta.get("corpus_fingerprint"), meta.get("settings_key")) == (
            len(dense), dense.manifest["complete"]["corpus_fingerprint"], dense.settings.key())

    @classmethod
    def load(cls, dense: DenseIndex, kind: str) -> AnnIndex:
        meta = cls.saved_meta(dense, kind)
        index_path = cls.paths(dense, kind)[0]
        if meta is None:
            raise IndexFormatError(
                f"{dense.folder} has no {kind} index; make one with "
                f"`e5kit index ann {dense.folder} --kind {kind}`"
            )
        if not cls.is_current(dense, meta):
            raise IndexFormatError(
                f"{index_path} is stale (built for another state of the index); rebuild it with "
                f"`e5kit index ann {dense.folder} --kind {kind}`"
            )
        return cls(kind, meta["params"], _faiss().read_index(str(index_path)), dense, meta["build_seconds"])

    def search(self, queries: np.ndarray, k: int, **overrides: Any) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) per query; search parameters (nprobe, refine, ef_search) may be overridden."""
        positive_int("k", k)
        p = search_params(self.kind, self.params, overrides)
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
            scores, rows = self.faiss_index.search(q, kk)
            self.dense.check_scores(q, scores, rows, ann=self.kind)
            return scores, rows
        faiss.extract_index_ivf(self.faiss_index).nprobe = int(p["nprobe"])
        depth = min(len(self.dense), kk * int(p["refine"]))
        _, cand = self.faiss_index.search(q, depth)
        scores = np.einsum("qd,qkd->qk", q, self.dense.vectors(np.maximum(cand, 0)))  # exact re-scoring
        scores[cand < 0] = -np.inf
        order = np.lexsort((cand, -scores), axis=1)[:, :kk]
        scores, rows = np.take_along_axis(scores, order, 1).astype(np.float32), np.take_along_axis(cand, order, 1)
        self.dense.check_scores(q, scores, rows)
        return scores, rows


def search_params(kind: str, params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A saved index's parameters with per-search overrides (nprobe, refine, ef_search), each checked."""
    bad = set(overrides) - (SEARCH_PARAMS & set(params))
    if bad:
        raise ValueError(f"{kind} has no search parameter(s) {sorted(bad)}")
    if kind == "ivfpq" and overrides.get("nprobe") is not None:
        nlist = params["nlist"]
        check_param("nprobe", overrides["nprobe"], high=nlist, why=f"this index has nlist={nlist} lists")
    return {**params, **check_params(kind, overrides)}


def build_ann(dense: DenseIndex, kind: str, *, seed: int = 0, save: bool = True, overwrite: bool = False,
              **params: Any) -> AnnIndex:
    """Build (and save under INDEX/ann/) a FAISS index of `kind` from the dense index's float shards.

    Every parameter is checked before any work. A saved `kind` index that is still current is replaced only
    with `overwrite` (a stale one, made before the index grew or changed, is replaced)."""
    n, d = len(dense), dense.dim
    p = resolve_params(kind, params, n, d)
    if save and not overwrite:
        meta = AnnIndex.saved_meta(dense, kind)
        if meta is not None and AnnIndex.is_current(dense, meta):
            raise IndexFormatError(
                f"{AnnIndex.paths(dense, kind)[0]} exists (built with {json.dumps(meta['params'])}); pass "
                "--overwrite (overwrite=True) to replace it")
    faiss = _faiss()
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
