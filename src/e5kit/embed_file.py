"""Embed a whole input file (txt, JSONL, Parquet, stdin) into an output file: the `e5kit encode` job."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from e5kit.io.outputs import check_output, write_embeddings
from e5kit.io.records import CorpusFields, detect_format, iter_text_records
from e5kit.options import with_options

if TYPE_CHECKING:  # pragma: no cover
    from e5kit.embedder import E5

ROLES = ("query", "passage", "none")


@dataclass(frozen=True)
class EncodeFileSettings:
    """How `encode_file` embeds: the prompt role (required), an instruct model's instruction (query role only),
    the record fields, normalization, progress, and whether an existing output may be replaced."""

    role: str | None = None  # "query", "passage" or "none"
    instruction: str | None = None
    fields: CorpusFields | None = None
    normalize: bool = True
    show_progress: bool | None = None
    overwrite: bool = False


def encode_file(e5: E5 | Callable[[], E5], input_path: str | os.PathLike[str], output_path: str | os.PathLike[str],
                settings: EncodeFileSettings | None = None, **options: Any) -> tuple[Path, int]:
    """Read every text, embed it with the role's prompt, write vectors (and ids when the input has them).
    `settings` (or its fields as keywords: role, instruction, fields, normalize, show_progress, overwrite).

    Everything that can fail without the model fails first: the role, the output (format, not the input, not an
    existing file unless `overwrite`, a writable place) and the whole input (read and checked record by
    record). `e5` may be a function that loads the model; it is called only then, so a typo costs no load.
    Ids are written only when the records carry them (txt and id-less records are in input order).
    """
    o = with_options(EncodeFileSettings, settings, options)
    role, overwrite = o.role, o.overwrite
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}" if role is not None else
                         f"give role=: one of {', '.join(ROLES)} (which prompt the texts get)")
    if o.instruction is not None and role != "query":
        raise ValueError(f"an instruction goes into the query prompt: use role 'query', not {role!r}")
    fmt = detect_format(input_path)
    check_output(output_path, overwrite=overwrite, input_path=input_path)
    f = o.fields or CorpusFields()
    records = list(iter_text_records(input_path, text_field=f.text, title_field=f.title, id_field=f.id, fmt=fmt))
    ids = [r.id for r in records] if records and not records[0].positional else None
    model = e5 if hasattr(e5, "encode") else e5()
    vectors = model.encode([r.text for r in records], prompt_name=role, normalize=o.normalize,
                           show_progress=o.show_progress, instruction=o.instruction)
    return write_embeddings(output_path, vectors, ids, overwrite=overwrite), len(records)
