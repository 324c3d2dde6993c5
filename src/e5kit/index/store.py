"""Search a finished index: exact top-k over memory-mapped shards (float, int8 or binary copies).

Memory is bounded by one block of one shard at a time; results map rows back to document ids by
reading only the id files of the shards that hold a hit.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from e5kit.index.corpus import CorpusFields, iter_corpus
from e5kit.index.exact import DEFAULT_BLOCK, topk_blocks
from e5kit.index.layout import IndexFormatError, IndexLayout, IndexSettings, ShardMeta, dequantize, how_to_set
from e5kit.io.records import TextRecord

VECTOR_KINDS = ("float", "int8", "binary")
SCORE_SLACK = 1e-2  # float16 storage and rounding keep a unit vector's |cosine| well within 1 + this


@dataclass(frozen=True)
class Hit:
    """One search result: rank (1-based), score, document id and its row in the index."""

    rank: int
    score: float
    id: str
    row: int


class DenseIndex:
    """A complete index folder opened for search. `open` checks the manifest and every shard's shape."""

    def __init__(self, layout: IndexLayout, manifest: dict[str, Any], metas: list[ShardMeta]) -> None:
        self.layout = layout
        self.manifest = manifest
        self.settings = IndexSettings.from_json(manifest["settings"])
        self.metas = metas
        self.starts = [m.start for m in metas]
        self._ids: dict[int, list[str]] = {}

    @classmethod
    def open(cls, folder: str | os.PathLike[str], *, verify: bool = False) -> DenseIndex:
        """Open a complete index. Its shapes are always checked; with `verify` every file's sha256 too (it reads
        every byte: docs/bench-index.md measures the cost; `e5kit index check` always verifies)."""
        layout = IndexLayout(folder)
        manifest = layout.read_manifest()
        complete = manifest.get("complete")
        if not complete:
            raise IndexFormatError(
                f"{layout.folder}: the index is not complete; finish `e5kit index build` (it resumes) "
                "or run `e5kit index merge` after every slice"
            )
        settings = IndexSettings.from_json(manifest["settings"])
        dense = cls(layout, manifest, layout.complete_shard_metas(int(complete["shards"]), settings))
        if verify:
            dense.verify()
        return dense

    def verify(self) -> None:
        """Check every shard file's sha256 against its metadata (reads every byte); raises on the first bad one."""
        for meta in self.metas:
            self.layout.verify_shard(meta, self.settings, checksums=True)

    def __len__(self) -> int:
        return int(self.manifest["complete"]["docs"])

    @property
    def dim(self) -> int:
        return self.settings.dim

    @property
    def folder(self) -> Path:
        return self.layout.folder

    @property
    def corpus_files(self) -> list[Path]:
        """The corpus files this index was built from, in order."""
        return [Path(p) for p in self.manifest["complete"]["sources"]]

    def corpus_records(self) -> Iterator[TextRecord]:
        """The indexed documents in row order, read back from the corpus files with the index's fields and
        empty-text rule (the texts that were encoded). Files gone since the build are an error."""
        missing = [str(p) for p in self.corpus_files if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"the corpus files {self.folder} was built from are gone: {', '.join(missing)}")
        s = self.settings
        return iter_corpus(self.corpus_files, fields=CorpusFields(**s.fields), skip_empty=s.skip_empty)

    def check_model(self, model: Any) -> None:
        """Raise unless `model` has the exact weights and settings that made this index; the message lists
        only what differs and how to pass the index's value."""
        s = self.settings
        if model.fingerprint != s.model_fingerprint:
            raise IndexFormatError(
                f"model {model.name!r} is not the model that built {self.folder} ({s.model!r}; weights "
                f"fingerprint {model.fingerprint[:12]} != {s.model_fingerprint[:12]}); use that model "
                "(leave --model out to load it)"
            )
        diffs = []
        if model.max_seq_length != s.max_seq_length:
            diffs.append(f"max_seq_length: the model has {model.max_seq_length}, the index {s.max_seq_length}; "
                         f"{how_to_set('max_seq_length', s.max_seq_length)}, or leave it out")
        if model.policy.prefix_for("query") != s.query_prefix:
            diffs.append(f"query prefix: the model adds {model.policy.prefix_for('query')!r}, the index expects "
                         f"{s.query_prefix!r}; {how_to_set('query_prefix', s.query_prefix)}")
        if diffs:
            raise IndexFormatError(f"model settings differ from {self.folder}'s: " + "; ".join(diffs))

    def check_scores(self, queries: np.ndarray, scores: np.ndarray, rows: np.ndarray, *, vectors: str = "float",
                     ann: str | None = None) -> None:
        """Raise IndexFormatError for a score no sound index can give: not finite, or, for unit vectors, above
        the query's norm. Cheap (top-k only); it catches a flipped exponent bit, not every corruption: only
        checksums (`e5kit index check`, `DenseIndex.open(verify=True)`) see all."""
        s, r = np.asarray(scores, dtype=np.float64), np.asarray(rows)
        bad = (r >= 0) & ~np.isfinite(s)
        if self.settings.normalize and vectors == "float":
            bound = np.linalg.norm(np.atleast_2d(queries), axis=1, keepdims=True) * (1 + SCORE_SLACK)
            bad |= (r >= 0) & np.isfinite(s) & (np.abs(s) > bound)
        if not bad.any():
            return
        qi, ci = (int(x[0]) for x in np.nonzero(bad))
        row = int(r[qi, ci])
        j = bisect.bisect_right(self.starts, row) - 1
        where = f"shard {j}" + (f" or the {ann} index file" if ann else "")
        raise IndexFormatError(
            f"{self.folder}: score {s[qi, ci]:.3g} for document row {row} in {where} is impossible "
            f"({'not finite' if not np.isfinite(s[qi, ci]) else 'above 1 for unit vectors'}): the file is "
            f"corrupt. `e5kit index check {self.folder}` verifies every file; {self.layout.rewrite_hint(j)}"
        )

    def blocks(self, kind: str = "float", block_size: int = DEFAULT_BLOCK) -> Iterator[np.ndarray]:
        """The corpus vectors in order, as float32 blocks of at most `block_size` rows."""
        if kind not in VECTOR_KINDS:
            raise ValueError(f"vectors {kind!r} is not one of {', '.join(VECTOR_KINDS)}")
        file_kind = "vectors" if kind == "float" else kind
        if file_kind != "vectors" and file_kind not in self.settings.quantize:
            raise IndexFormatError(
                f"{self.folder} has no {kind} copy (has: {', '.join(('float', *self.settings.quantize))}); "
                f"rebuild with quantize=['{kind}'] (--quantize {kind})"
            )
        for meta in self.metas:
            arr = self.layout.load_array(meta, file_kind, self.settings)
            for s in range(0, meta.count, block_size):
                block = arr[s : s + block_size]
                yield block if kind == "float" else dequantize(block, kind, self.dim)

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """float32 vectors of the given global rows (any shape), read from the memory-mapped shards."""
        rows = np.asarray(rows, dtype=np.int64)
        flat = rows.reshape(-1)
        out = np.empty((len(flat), self.dim), dtype=np.float32)
        shard_of = np.searchsorted(self.starts, flat, side="right") - 1
        for j in np.unique(shard_of):
            sel = np.nonzero(shard_of == j)[0]
            arr = self.layout.load_array(self.metas[j], "vectors", self.settings)
            out[sel] = arr[flat[sel] - self.metas[j].start]
        return out.reshape(*rows.shape, self.dim)

    def search_vectors(
        self, queries: np.ndarray, k: int, *, vectors: str = "float", block_size: int = DEFAULT_BLOCK
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k (scores, rows), each (q, k), of query embeddings against the stored vectors."""
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(
                f"query embeddings of shape {np.shape(queries)} do not match the index dim {self.dim}"
            )
        scores, rows = topk_blocks(q, self.blocks(vectors, block_size), k)
        self.check_scores(q, scores, rows, vectors=vectors)
        return scores, rows

    def ids_of(self, rows: Sequence[int]) -> list[str]:
        """Document ids of global rows."""
        out = []
        for row in rows:
            j = bisect.bisect_right(self.starts, int(row)) - 1
            if j not in self._ids:
                self._ids[j] = self.layout.load_ids(self.metas[j])
            out.append(self._ids[j][int(row) - self.metas[j].start])
        return out

    def hits(self, scores: np.ndarray, rows: np.ndarray) -> list[list[Hit]]:
        """Per query, the ranked Hits for a (scores, rows) pair from a search."""
        return [
            [
                Hit(r + 1, float(s), i, int(row))
                for r, (s, row, i) in enumerate(zip(sc, rw, self.ids_of(rw), strict=True))
            ]
            for sc, rw in zip(scores, rows, strict=True)
        ]

    def search(
        self,
        model: Any,
        queries: Sequence[str],
        k: int = 10,
        *,
        vectors: str = "float",
        show_progress: bool | None = None,
        instruction: str | None = None,
    ) -> list[list[Hit]]:
        """Encode `queries` with the model's query prompt (model must match the index) and search exactly;
        `instruction` is the task description of an instruct model's query prompt."""
        self.check_model(model)
        if isinstance(queries, str):
            queries = [queries]
        q = model.encode_queries(
            list(queries), normalize=self.settings.normalize, show_progress=show_progress, instruction=instruction
        )
        return self.hits(*self.search_vectors(q, k, vectors=vectors))
