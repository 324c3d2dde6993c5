"""Scientific papers: (title, abstract) from the arXiv metadata snapshot (JSON lines with `title`, `abstract`)
or S2ORC / Semantic Scholar style JSON lines (`title` + `abstract` or `paperAbstract`, or both under
`metadata`). Citation pairs are not built."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from e5kit.data.dumps import open_dump_text
from e5kit.data.pairs import Pair, clean_space
from e5kit.io.records import iter_jsonl

NAME = "papers"


def _field(obj: dict[str, Any], *names: str) -> str:
    for holder in (obj, obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}):
        for name in names:
            value = holder.get(name)
            if isinstance(value, str) and value.strip():
                return value
    return ""


def iter_file(path: str | os.PathLike[str], *, skip_bad: bool = True) -> Iterator[Pair]:
    for obj in iter_jsonl(path, skip_bad=skip_bad, opener=open_dump_text):
        title = clean_space(_field(obj, "title"))
        abstract = clean_space(_field(obj, "abstract", "paperAbstract"))
        if title and abstract:
            pid = obj.get("id") or obj.get("paperId") or obj.get("corpusid") or obj.get("paper_id")
            yield Pair(title, abstract, NAME, {"paper": str(pid)} if pid else {})
