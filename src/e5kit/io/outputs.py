"""Writing embeddings to .npy, .jsonl[.gz] or .parquet, atomically (temp file + rename).

A .npy output keeps its ids (when the input had them) in NAME.ids.jsonl beside it: one JSON string per line, so
an id holding a newline or tab stays one line. An existing output, or an ids file beside it, is replaced only
with `overwrite`; an output that is the input is always refused.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from e5kit.io.atomic import atomic_path, check_writable

OUTPUT_SUFFIXES = (".npy", ".jsonl", ".jsonl.gz", ".parquet")
IDS_SUFFIX = ".ids.jsonl"
LEGACY_IDS_SUFFIX = ".ids.txt"  # e5kit <= 0.x wrote one id per text line; stale beside a new .npy


def output_format(path: str | os.PathLike[str]) -> str:
    """'npy', 'jsonl' or 'parquet' from the output name; anything else is a ValueError naming the choices."""
    name = str(path).lower()
    for suffix, fmt in ((".npy", "npy"), (".jsonl", "jsonl"), (".jsonl.gz", "jsonl"), (".parquet", "parquet")):
        if name.endswith(suffix):
            return fmt
    raise ValueError(f"output {path}: unknown format; use one of {', '.join(OUTPUT_SUFFIXES)}")


def ids_path(path: str | os.PathLike[str]) -> Path:
    """Where the ids of a .npy output go: NAME.ids.jsonl beside it, one JSON string per line."""
    p = Path(path)
    return p.with_name(p.name[: -len(".npy")] + IDS_SUFFIX)


def _companions(path: Path) -> list[Path]:
    """The files an output owns beside itself: for NAME.npy its ids file (and the old-style one)."""
    if output_format(path) != "npy":
        return []
    return [ids_path(path), path.with_name(path.name[: -len(".npy")] + LEGACY_IDS_SUFFIX)]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path: str | os.PathLike[str], *, overwrite: bool = False,
                 input_path: str | os.PathLike[str] | None = None) -> str:
    """Everything that can be known about writing `path` before any work; returns its format.

    Refuses an unknown format, an output (or its ids file) that is the input, an existing output or ids file
    without `overwrite`, and a place no file can be created in, each naming the path.
    """
    path = Path(path)
    fmt = output_format(path)
    if input_path is not None and str(input_path) != "-":
        src = Path(input_path)
        for target in (path, *_companions(path)):
            if _same_file(target, src) or target.resolve() == src.resolve():
                raise ValueError(f"output {target} is the input {input_path}; write to another file")
    check_writable(path)
    if not overwrite:
        existing = [str(p) for p in (path, *_companions(path)) if p.exists()]
        if existing:
            raise FileExistsError(f"{', '.join(existing)} exists; pass --overwrite (Python: overwrite=True) "
                                  "to replace it")
    return fmt


def write_embeddings(path: str | os.PathLike[str], vectors: np.ndarray, ids: Sequence[str] | None = None, *,
                     overwrite: bool = False) -> Path:
    """Write (n, dim) float32 vectors, with ids when given (.npy: ids in NAME.ids.jsonl beside it).

    Both files are written to temp names first; then a stale ids file is removed, the vectors renamed into
    place and the ids after them, so at no moment do ids sit beside vectors they do not describe.
    """
    path = Path(path)
    fmt = check_output(path, overwrite=overwrite)
    vectors = np.asarray(vectors, dtype=np.float32)
    if ids is not None and len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "npy":
        with atomic_path(ids_path(path)) if ids is not None else contextlib.nullcontext() as ids_tmp:
            if ids_tmp is not None:
                with open(ids_tmp, "x", encoding="utf-8", newline="\n") as fh:
                    fh.writelines(json.dumps(str(i)) + "\n" for i in ids)
            with atomic_path(path) as tmp:
                with open(tmp, "xb") as fh:
                    np.save(fh, vectors, allow_pickle=False)
                for stale in _companions(path):
                    stale.unlink(missing_ok=True)
            # the vectors are in place (inner block); leaving the outer block renames the ids beside them
    elif fmt == "jsonl":
        with atomic_path(path) as tmp:
            opener = gzip.open if path.name.endswith(".gz") else open
            with opener(tmp, "wt", encoding="utf-8") as fh:
                for row, vec in enumerate(vectors):
                    record = {"id": ids[row]} if ids is not None else {}
                    record["embedding"] = [float(x) for x in vec]
                    fh.write(json.dumps(record) + "\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        with atomic_path(path) as tmp:
            dim = vectors.shape[1] if vectors.ndim == 2 else 0
            flat = pa.array(vectors.reshape(-1), type=pa.float32())
            columns = {"embedding": pa.FixedSizeListArray.from_arrays(flat, dim)}
            if ids is not None:
                columns = {"id": pa.array(list(ids), type=pa.string()), **columns}
            pq.write_table(pa.table(columns), tmp)
    return path
