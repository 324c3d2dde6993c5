"""Embed a whole input file (txt, JSONL, Parquet, stdin) into an output file: the `e5kit encode` job."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from e5kit.io.outputs import check_output, write_embeddings
from e5kit.io.records import CorpusFields, detect_format, iter_text_records

if TYPE_CHECKING:  # pragma: no cover
    from e5kit.embedder import E5

ROLES = ("query", "passage", "none")


def encode_file(e5: E5 | Callable[[], E5], input_path: str | os.PathLike[str], output_path: str | os.PathLike[str],
                *, role: str, fields: CorpusFields | None = None, normalize: bool = True,
                show_progress: bool | None = None, overwrite: bool = False) -> tuple[Path, int]:
    """Read every text, embed it with the role's prompt, write vectors (and ids when the input has them).

    Everything that can fail without the model fails first: the role, the output (format, not the input, not an
    existing file unless `overwrite`, a writable place) and the whole input (read and checked record by
    record). `e5` may be a function that loads the model; it is called only then, so a typo costs no load.
    Ids are written only when the records carry them (txt and id-less records are in input order).
    """
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    fmt = detect_format(input_path)
    check_output(output_path, overwrite=overwrite, input_path=input_path)
    f = fields or CorpusFields()
    records = list(iter_text_records(input_path, text_field=f.text, title_field=f.title, id_field=f.id, fmt=fmt))
    ids = [r.id for r in records] if records and not records[0].positional else None
    model = e5 if hasattr(e5, "encode") else e5()
    vectors = model.encode([r.text for r in records], prompt_name=role, normalize=normalize,
                           show_progress=show_progress)
    return write_embeddings(output_path, vectors, ids, overwrite=overwrite), len(records)
