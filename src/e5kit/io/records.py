"""Streaming readers for text and record files, with errors that name the file and line."""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from e5kit.errors import InputFormatError

TEXT_SUFFIXES = (".txt",)
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)


def open_text(path: str | os.PathLike[str]) -> IO[str]:
    """Open a text file for reading, transparently gunzipping `.gz`; "-" is stdin."""
    if str(path) == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="strict")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    if p.suffix == ".gz":
        return gzip.open(p, "rt", encoding="utf-8")
    return open(p, encoding="utf-8")


def iter_jsonl(path: str | os.PathLike[str], *, skip_bad: bool = False,
               bad: list[tuple[int, str]] | None = None,
               opener: Callable[[str | os.PathLike[str]], IO[str]] = open_text) -> Iterator[dict[str, Any]]:
    """Objects from a JSON Lines file; a malformed line raises InputFormatError with its number.

    With `skip_bad`, malformed lines are skipped and (line, reason) appended to `bad` instead.
    Blank lines are ignored. `opener` turns the path into a text stream (e.g. a dump reader that
    also handles bz2/xz/zstd).
    """
    with opener(path) as fh:
        try:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    if not isinstance(obj, dict):
                        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
                except ValueError as exc:
                    reason = f"{path}:{lineno}: malformed JSON line ({exc})"
                    if not skip_bad:
                        raise InputFormatError(reason) from exc
                    if bad is not None:
                        bad.append((lineno, reason))
                    continue
                yield obj
        except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
            raise InputFormatError(f"{path}: not readable as UTF-8 JSON Lines ({exc})") from exc


@dataclass(frozen=True)
class TextRecord:
    """One input text with its id (the file's id field, else its 0-based position)."""

    id: str
    text: str


@dataclass(frozen=True)
class CorpusFields:
    """Which record fields hold the id, title and text (BEIR names by default)."""

    id: str = "_id"
    title: str | None = "title"
    text: str = "text"

    def as_dict(self) -> dict[str, str | None]:
        return {"id": self.id, "title": self.title, "text": self.text}

    @classmethod
    def from_options(cls, *, id: str | None, title: str | None, text: str | None) -> CorpusFields | None:
        """Fields from command-line options: None when none is given (keep an existing index's); a title
        of "" means no title field."""
        if id is None and title is None and text is None:
            return None
        return cls(id=id or "_id", title="title" if title is None else (title or None), text=text or "text")



def _record_text(obj: dict[str, Any], where: str, text_field: str, title_field: str | None) -> str:
    if text_field not in obj:
        raise InputFormatError(f"{where}: no {text_field!r} field (fields: {', '.join(sorted(obj))})")
    text = obj[text_field]
    title = obj.get(title_field) if title_field else None
    if not isinstance(text, str) or (title is not None and not isinstance(title, str)):
        raise InputFormatError(f"{where}: {text_field!r}/{title_field!r} must be strings")
    return join_title(title, text)


def join_title(title: str | None, text: str) -> str:
    """A document as one string, title + " " + text (stripped), as BEIR and mteb join them; no title: the text."""
    return f"{title} {text}".strip() if title else text


def iter_text_records(path: str | os.PathLike[str], *, text_field: str = "text", title_field: str | None = "title",
                      id_field: str = "_id", fmt: str | None = None) -> Iterator[TextRecord]:
    """Texts from .txt (one per line), .jsonl[.gz] (text, or title + " " + text), .parquet, or "-" (stdin text).

    JSONL ids come from `id_field`, else "id", else the record's position.
    """
    fmt = fmt or detect_format(path)
    if fmt == "txt":
        with open_text(path) as fh:
            for i, line in enumerate(fh):
                yield TextRecord(str(i), line.rstrip("\n").rstrip("\r"))
    elif fmt == "jsonl":
        for i, obj in enumerate(iter_jsonl(path)):
            raw_id = obj.get(id_field, obj.get("id", i))
            yield TextRecord(str(raw_id), _record_text(obj, f"{path}: record {i + 1}", text_field, title_field))
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        i = 0
        for batch in pf.iter_batches(batch_size=4096):
            for obj in batch.to_pylist():
                raw_id = obj.get(id_field, obj.get("id", i))
                yield TextRecord(str(raw_id), _record_text(obj, f"{path}: row {i}", text_field, title_field))
                i += 1
    else:
        raise InputFormatError(f"{path}: unknown input format {fmt!r} (use txt, jsonl or parquet)")


def detect_format(path: str | os.PathLike[str]) -> str:
    """'txt', 'jsonl' or 'parquet' from the file name; stdin ("-") is text."""
    name = str(path).lower()
    if name == "-" or name.endswith(TEXT_SUFFIXES) or name.endswith(".txt.gz"):
        return "txt"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise InputFormatError(
        f"{path}: cannot tell the format from the name; use .txt, .jsonl, .jsonl.gz or .parquet (or - for stdin)"
    )
