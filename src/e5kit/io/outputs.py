"""Writing embeddings to .npy, .jsonl[.gz] or .parquet, atomically (temp file + rename)."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from e5kit.io.atomic import atomic_path

OUTPUT_SUFFIXES = (".npy", ".jsonl", ".jsonl.gz", ".parquet")


def output_format(path: str | os.PathLike[str]) -> str:
    """'npy', 'jsonl' or 'parquet' from the output name; anything else is a ValueError naming the choices."""
    name = str(path).lower()
    for suffix, fmt in ((".npy", "npy"), (".jsonl", "jsonl"), (".jsonl.gz", "jsonl"), (".parquet", "parquet")):
        if name.endswith(suffix):
            return fmt
    raise ValueError(f"output {path}: unknown format; use one of {', '.join(OUTPUT_SUFFIXES)}")


def ids_path(path: str | os.PathLike[str]) -> Path:
    """Where the ids of a .npy output go: a text file beside it, one id per line."""
    p = Path(path)
    return p.with_name(p.name[: -len(".npy")] + ".ids.txt")


def write_embeddings(path: str | os.PathLike[str], vectors: np.ndarray, ids: Sequence[str] | None = None) -> Path:
    """Write (n, dim) float32 vectors, with ids when given (.npy: ids in NAME.ids.txt beside it)."""
    path = Path(path)
    fmt = output_format(path)
    vectors = np.asarray(vectors, dtype=np.float32)
    if ids is not None and len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if fmt == "npy":
            with open(tmp, "xb") as fh:
                np.save(fh, vectors, allow_pickle=False)
            if ids is not None:
                ids_path(path).write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
        elif fmt == "jsonl":
            opener = gzip.open if path.name.endswith(".gz") else open
            with opener(tmp, "wt", encoding="utf-8") as fh:
                for row, vec in enumerate(vectors):
                    record = {"id": ids[row]} if ids is not None else {}
                    record["embedding"] = [float(x) for x in vec]
                    fh.write(json.dumps(record) + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            dim = vectors.shape[1] if vectors.ndim == 2 else 0
            flat = pa.array(vectors.reshape(-1), type=pa.float32())
            columns = {"embedding": pa.FixedSizeListArray.from_arrays(flat, dim)}
            if ids is not None:
                columns = {"id": pa.array(list(ids), type=pa.string()), **columns}
            pq.write_table(pa.table(columns), tmp)
    return path
