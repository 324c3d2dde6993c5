"""Scientific papers: (title, abstract) from the arXiv metadata snapshot (JSON lines with `title`, `abstract`)
or S2ORC / Semantic Scholar style JSON lines (`title` + `abstract` or `paperAbstract`, or both under
`metadata`). Citation pairs are not built."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from e5kit.data.dumps import open_dump_text
from e5kit.data.pairs import Pair, clean_space
from e5kit.io.bad_records import BadRecords, iter_records

NAME = "papers"


def _field(obj: dict[str, Any], *names: str) -> str:
    """The first non-empty text among `names` (top level, then under `metadata`); a non-string value is an error."""
    for holder in (obj, obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}):
        for name in names:
            value = holder.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"field {name!r} must be a string, got {type(value).__name__}")
            if value and value.strip():
                return value
    return ""


def iter_file(path: str | os.PathLike[str], *, bad: BadRecords | None = None) -> Iterator[Pair]:
    bad = bad or BadRecords.strict("input records")
    for obj, where in iter_records(path, bad, opener=open_dump_text):
        try:
            title = clean_space(_field(obj, "title"))
            abstract = clean_space(_field(obj, "abstract", "paperAbstract"))
        except ValueError as exc:
            bad.skip(where, str(exc))
            continue
        bad.ok()
        if title and abstract:
            pid = obj.get("id") or obj.get("paperId") or obj.get("corpusid") or obj.get("paper_id")
            yield Pair(title, abstract, NAME, {"paper": str(pid)} if pid else {})
