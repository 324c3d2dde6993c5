"""Small corpora and hand-made indexes for the index tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from e5kit.index.layout import FORMAT, IndexLayout, IndexSettings
from e5kit.index.merge import merge_index
from e5kit.io.atomic import atomic_write_json

WORDS = (
    "the a of and to in is was for on with what how why protein cell cells water fire earth light dark big small"
).split()


def doc_text(i: int) -> str:
    rng = np.random.default_rng(i)
    return " ".join(rng.choice(WORDS, size=3 + i % 9)) + f" {i}"


def write_corpus(path: Path, n: int, *, start: int = 0, extra: dict | None = None) -> Path:
    """A BEIR-style corpus.jsonl of n documents d{start}..d{start+n-1}."""
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(start, start + n):
            rec = {"_id": f"d{i}", "title": f"title {i % 5}", "text": doc_text(i), **(extra or {})}
            fh.write(json.dumps(rec) + "\n")
    return path


def clustered(n: int, dim: int, *, clusters: int = 50, seed: int = 0) -> np.ndarray:
    """Unit vectors around random centres: structured like real embeddings, unlike uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def index_from_vectors(
    folder: Path, vectors: np.ndarray, *, shard_size: int = 1000, quantize: tuple[str, ...] = ()
) -> Path:
    """An index folder holding given vectors (ids v0..), as a build would write it, without a model."""
    settings = IndexSettings(
        model="none",
        model_fingerprint="0" * 64,
        revision=None,
        prompts={},
        passage_prefix="",
        query_prefix="",
        precision="fp32",
        dim=vectors.shape[1],
        max_seq_length=8,
        normalize=True,
        quantize=quantize,
        shard_size=shard_size,
    )
    layout = IndexLayout(folder)
    layout.write_manifest({"format": FORMAT, "settings": settings.to_json(), "complete": None, "sources": []})
    hashes = []
    for j, s in enumerate(range(0, len(vectors), shard_size)):
        ids = [f"v{i}" for i in range(s, min(s + shard_size, len(vectors)))]
        hashes.append(hashlib.sha256(json.dumps(ids).encode()).hexdigest())
        layout.write_shard(j, s, ids, vectors[s : s + shard_size], settings, hashes[-1])
    layout.slice_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        layout.slice_dir / "0-of-1.json",
        {
            "slice": [0, 1],
            "docs": len(vectors),
            "shards": len(hashes),
            "shard_sha256": hashes,
            "base_shards": 0,
            "sources": [],
        },
    )
    merge_index(folder)
    return folder
