"""Streaming readers for text and record files, with errors that name the file and line."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from e5kit.errors import InputFormatError

TEXT_SUFFIXES = (".txt",)
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)


def _exists(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    return p


def open_text(path: str | os.PathLike[str]) -> IO[str]:
    """Open a text file for reading, transparently gunzipping `.gz`; "-" is stdin."""
    if str(path) == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="strict")
    p = _exists(path)
    if p.suffix == ".gz":
        return gzip.open(p, "rt", encoding="utf-8")
    return open(p, encoding="utf-8")


def _open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    if str(path) == "-":
        return contextlib.nullcontext(sys.stdin.buffer)  # type: ignore[return-value]  # stdin stays open
    p = _exists(path)
    return gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb")


def iter_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """(line number, text without its line end) of a UTF-8 file, `.gz` or stdin ("-").

    Each line is decoded on its own, so bytes that are not UTF-8 are reported with their file and line
    (a text stream decodes 8 KiB blocks and can only say "somewhere"). A UTF-8 byte-order mark is dropped.
    """
    with _open_binary(path) as fh:
        try:
            for lineno, raw in enumerate(fh, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputFormatError(
                        f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} "
                        "of the line); convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8"
                    ) from None
                if lineno == 1:
                    line = line.removeprefix("\ufeff")
                yield lineno, line.rstrip("\n").rstrip("\r")
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise InputFormatError(f"{path}: not readable as gzip ({exc})") from exc


def _stream_lines(path: str | os.PathLike[str], opener: Callable[[str | os.PathLike[str]], IO[str]]
                  ) -> Iterator[tuple[int, str]]:
    """Numbered lines of a text stream from a caller's opener (dump formats e5kit does not decode itself)."""
    with opener(path) as fh:
        try:
            yield from enumerate(fh, start=1)
        except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
            raise InputFormatError(f"{path}: not readable as UTF-8 JSON Lines ({exc})") from exc


def iter_jsonl(path: str | os.PathLike[str], *, skip_bad: bool = False,
               bad: list[tuple[int, str]] | None = None,
               opener: Callable[[str | os.PathLike[str]], IO[str]] = open_text) -> Iterator[dict[str, Any]]:
    """Objects from a JSON Lines file; a malformed line raises InputFormatError with its number.

    With `skip_bad`, malformed lines are skipped and (line, reason) appended to `bad` instead.
    Blank lines are ignored. `opener` turns the path into a text stream (e.g. a dump reader that
    also handles bz2/xz/zstd); the default reads UTF-8 line by line (bad bytes name their line).
    """
    for _, obj in iter_jsonl_numbered(path, skip_bad=skip_bad, bad=bad, opener=opener):
        yield obj


def iter_jsonl_numbered(path: str | os.PathLike[str], *, skip_bad: bool = False,
                        bad: list[tuple[int, str]] | None = None,
                        opener: Callable[[str | os.PathLike[str]], IO[str]] = open_text
                        ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) pairs of `iter_jsonl`, for callers whose own errors must name the line."""
    lines = iter_lines(path) if opener is open_text else _stream_lines(path, opener)
    for lineno, line in lines:
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
        yield lineno, obj


@dataclass(frozen=True)
class TextRecord:
    """One input text with its id: the file's id field, or (`positional`) its 0-based position."""

    id: str
    text: str
    positional: bool = False


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

    JSONL/Parquet ids come from `id_field`, else "id" (a string or an integer). Either every record has one or
    none has (then ids are positions, marked `positional`): a file mixing both is refused at the first record
    that breaks the pattern, as positions would collide with real ids.
    """
    fmt = fmt or detect_format(path)
    if fmt == "txt":
        for lineno, line in iter_lines(path):
            yield TextRecord(str(lineno - 1), line, positional=True)
        return
    if fmt == "jsonl":
        rows: Iterator[tuple[str, dict[str, Any]]] = (
            (f"{path}:{lineno}", obj) for lineno, obj in iter_jsonl_numbered(path))
    elif fmt == "parquet":
        rows = _parquet_rows(path)
    else:
        raise InputFormatError(f"{path}: unknown input format {fmt!r} (use txt, jsonl or parquet)")
    with_ids: bool | None = None
    for i, (where, obj) in enumerate(rows):
        raw_id = _record_id(obj, where, id_field)
        if with_ids is None:
            with_ids = raw_id is not None
        elif with_ids != (raw_id is not None):
            said = f"no {id_field!r} (or 'id') field, but earlier records have ids" if with_ids else \
                "has an id, but earlier records have none"
            raise InputFormatError(f"{where}: {said}; give every record an id, or none (ids are then positions)")
        text = _record_text(obj, where, text_field, title_field)
        yield TextRecord(str(i), text, positional=True) if raw_id is None else TextRecord(str(raw_id), text)


def _record_id(obj: dict[str, Any], where: str, id_field: str) -> str | int | None:
    key = id_field if id_field in obj else "id" if "id" in obj else None
    if key is None:
        return None
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputFormatError(f"{where}: {key!r} must be a string or an integer, got {type(value).__name__} "
                               f"{value!r:.40}")
    return value


def open_parquet(path: str | os.PathLike[str]) -> Any:
    """pyarrow's ParquetFile for `path`; a missing file or one that is not Parquet names the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = _exists(path)
    try:
        return pq.ParquetFile(p)
    except (pa.ArrowException, OSError) as exc:
        raise InputFormatError(f"{path}: not a readable Parquet file ({exc})") from None


def _parquet_rows(path: str | os.PathLike[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """("FILE: row N", row) for every row; a file that is not Parquet, or a broken page, names the file."""
    import pyarrow as pa

    pf = open_parquet(path)
    i = 0
    batches = pf.iter_batches(batch_size=4096)
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as exc:
            raise InputFormatError(f"{path}: row {i} and after: unreadable Parquet data ({exc})") from None
        if batch is None:
            return
        for obj in batch.to_pylist():
            yield f"{path}: row {i}", obj
            i += 1


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
