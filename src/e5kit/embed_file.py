"""Embed a whole input file (txt, JSONL, Parquet, stdin) into an output file: the `e5kit encode` job."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from e5kit.io.outputs import output_format, write_embeddings
from e5kit.io.records import CorpusFields, detect_format, iter_text_records

if TYPE_CHECKING:  # pragma: no cover
    from e5kit.embedder import E5

ROLES = ("query", "passage", "none")


def encode_file(e5: E5, input_path: str | os.PathLike[str], output_path: str | os.PathLike[str], *, role: str,
                fields: CorpusFields | None = None, normalize: bool = True,
                show_progress: bool | None = None) -> tuple[Path, int]:
    """Read every text, embed it with the role's prompt, write vectors (and ids when the input has them).

    The output format is checked before any work is done, so a typo costs nothing.
    """
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    output_format(output_path)
    fmt = detect_format(input_path)
    f = fields or CorpusFields()
    records = list(iter_text_records(input_path, text_field=f.text, title_field=f.title, id_field=f.id, fmt=fmt))
    ids = [r.id for r in records] if fmt != "txt" else None
    vectors = e5.encode([r.text for r in records], prompt_name=role, normalize=normalize, show_progress=show_progress)
    return write_embeddings(output_path, vectors, ids), len(records)
