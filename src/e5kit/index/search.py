"""One way to search an index, shared by `e5kit index search` and Python users: dense (exact over float or
quantized vectors, or a FAISS index), BM25, or hybrid fusion; always with the model that built the index.

    from e5kit.index.search import search
    hits = search("my-index", ["what causes rain"], k=10)                      # the index's own model
    hits = search("my-index", queries, k=100, method="rrf")                    # needs `e5kit index bm25`
    hits = search(index, queries, options=SearchOptions(ann="hnsw", ef_search=256))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from e5kit.index.layout import IndexFormatError, IndexLayout, IndexSettings
from e5kit.index.store import DenseIndex
from e5kit.options import positive_int

METHODS = ("dense", "bm25", "rrf", "weighted")


@dataclass(frozen=True)
class SearchOptions:
    """How to search besides method and k: hybrid weight, which vectors, a FAISS index and its knobs.
    Values are checked when the options are made, so a bad one fails before any model loads."""

    alpha: float = 0.5  # hybrid weight of dense vs BM25 ("weighted")
    vectors: str = "float"  # exact search over "float", "int8" or "binary" vectors
    ann: str | None = None  # search a FAISS index ("flat", "ivfpq", "hnsw") instead
    nprobe: int | None = None
    refine: int | None = None
    ef_search: int | None = None
    show_progress: bool | None = None
    instruction: str | None = None  # instruct models: the task description in the query prompt

    def __post_init__(self) -> None:
        from e5kit.index.ann import ANN_KINDS, check_params
        from e5kit.index.store import VECTOR_KINDS

        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be a number in [0, 1], got {self.alpha!r}")
        if self.vectors not in VECTOR_KINDS:
            raise ValueError(f"vectors {self.vectors!r} is not one of {', '.join(VECTOR_KINDS)}")
        if self.ann is not None and self.ann not in ANN_KINDS:
            raise ValueError(f"ann {self.ann!r} is not one of {', '.join(ANN_KINDS)}")
        if self.ann and self.vectors != "float":
            raise ValueError("a FAISS index (--ann) has its own vectors; drop --vectors or --ann")
        for name, value in self.ann_overrides().items():
            owner = "hnsw" if name == "ef_search" else "ivfpq"
            if self.ann != owner:
                raise ValueError(f"--{name.replace('_', '-')} applies to --ann {owner} only")
            check_params(owner, {name: value})

    def ann_overrides(self) -> dict[str, int]:
        return {k: v for k, v in (("nprobe", self.nprobe), ("refine", self.refine), ("ef_search", self.ef_search))
                if v is not None}


def index_model(folder: str | os.PathLike[str], *, model: str | None = None, **e5_kwargs: Any) -> Any:
    """The E5 for an index: `model` when named, else the one that built it (with its precision and max
    length, unless given); for a folder without an index, `model` or the default model."""
    from e5kit.embedder import E5
    from e5kit.model.checkpoint import default_model_name

    layout = IndexLayout(folder)
    if model or not layout.exists():
        return E5(model or default_model_name(), **e5_kwargs)
    s = IndexSettings.from_json(layout.read_manifest()["settings"])
    e5_kwargs["precision"] = e5_kwargs.get("precision") or s.precision
    e5_kwargs["max_seq_length"] = e5_kwargs.get("max_seq_length") or s.max_seq_length
    return E5(s.model, **e5_kwargs)


def prepare(index: DenseIndex | str | os.PathLike[str], *, k: int = 10, method: str = "dense",
            options: SearchOptions | None = None) -> DenseIndex:
    """Open the index and check that the search asked for can run (the quantized copy, FAISS or BM25 index
    it needs exists and is current, parameters in range), before any model loads or query is encoded."""
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
    positive_int("k", k)
    o = options or SearchOptions()
    if o.ann and method != "dense":
        raise ValueError("a FAISS index searches the dense vectors only; drop ann or use method 'dense'")
    dense = index if isinstance(index, DenseIndex) else DenseIndex.open(index)
    if o.vectors != "float" and o.vectors not in dense.settings.quantize:
        next(dense.blocks(o.vectors))  # raises, naming the copies there are
    if o.ann:
        from e5kit.index.ann import AnnIndex, search_params

        meta = AnnIndex.saved_meta(dense, o.ann)
        if meta is None or not AnnIndex.is_current(dense, meta):
            AnnIndex.load(dense, o.ann)  # raises: none, or stale
        search_params(o.ann, meta["params"], o.ann_overrides())
    if method != "dense":
        from e5kit.index.hybrid import bm25_folder

        if not bm25_folder(dense).is_dir():
            raise IndexFormatError(f"{dense.folder} has no BM25 index; make one with `e5kit index bm25 {dense.folder}`")
    return dense


def search(index: DenseIndex | str | os.PathLike[str], queries: Sequence[str], *, k: int = 10,
           method: str = "dense", model: Any = None, options: SearchOptions | None = None) -> list[list[Any]]:
    """Ranked hits (rank, score, id, row) per query. `model` defaults to the index's own; another is refused."""
    o = options or SearchOptions()
    dense = prepare(index, k=k, method=method, options=o)
    model = model or index_model(dense.folder)
    if method != "dense":
        from e5kit.index.hybrid import HybridSearcher

        return HybridSearcher.open(dense, model, o.instruction).search(
            queries, k, method=method, alpha=o.alpha, vectors=o.vectors, show_progress=o.show_progress)
    if o.ann:
        from e5kit.index.ann import AnnIndex

        dense.check_model(model)
        q = model.encode_queries(list(queries), normalize=dense.settings.normalize, show_progress=o.show_progress,
                                 instruction=o.instruction)
        return dense.hits(*AnnIndex.load(dense, o.ann).search(q, k, **o.ann_overrides()))
    return dense.search(model, list(queries), k, vectors=o.vectors, show_progress=o.show_progress,
                        instruction=o.instruction)
