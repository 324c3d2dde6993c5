"""Corpus input for indexing: resolve files (BEIR folders too) and stream (id, text) records strictly.

Indexing needs stable, unique ids and real text, so this reader is stricter than `iter_text_records`:
a JSONL/Parquet record without an id, or with an empty text, is an error naming the file and record
(empty texts may be skipped on request). A .txt file has no ids: a line's id is its 0-based number.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from e5kit.errors import InputFormatError
from e5kit.io.records import CorpusFields, TextRecord, detect_format, iter_jsonl, iter_text_records, open_parquet
from e5kit.model.prompts import passage_text

CORPUS_NAMES = ("corpus.jsonl", "corpus.jsonl.gz", "corpus.parquet")
SUPPORTED = (".jsonl", ".jsonl.gz", ".json.gz", ".ndjson", ".parquet", ".txt", ".txt.gz")


BEIR_FIELDS = CorpusFields()


def resolve_corpus(corpus: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files of a corpus: one file, several, or a folder (BEIR: its corpus.jsonl[.gz]; else its files)."""
    items = [corpus] if isinstance(corpus, (str, os.PathLike)) else list(corpus)
    if not items:
        raise ValueError("no corpus given: pass a file, several files or a BEIR-style folder")
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            beir = [p / n for n in CORPUS_NAMES if (p / n).is_file()]
            found = beir[:1] or sorted(
                f for f in p.iterdir() if f.is_file() and f.name.lower().endswith(SUPPORTED)
            )
            if not found:
                raise FileNotFoundError(
                    f"{p}: no corpus.jsonl[.gz] and no {'/'.join(SUPPORTED)} files in this folder"
                )
            files.extend(found)
        elif p.is_file():
            detect_format(p)  # raises on an unknown suffix
            files.append(p)
        else:
            raise FileNotFoundError(f"no such corpus file or folder: {p}")
    return files


def _jsonl_records(path: Path, fields: CorpusFields) -> Iterator[TextRecord]:
    for n, obj in enumerate(iter_jsonl(path), start=1):
        raw_id = obj.get(fields.id, obj.get("id"))
        if raw_id is None or isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or raw_id == "":
            raise InputFormatError(
                f"{path}: record {n} has no usable {fields.id!r} (or 'id') field: {raw_id!r}"
            )
        item = {"text": obj.get(fields.text), "title": obj.get(fields.title) if fields.title else None}
        if item["text"] is None:
            raise InputFormatError(f"{path}: record {n} (id {raw_id!r}) has no {fields.text!r} field")
        try:
            text = passage_text(item, n)
        except TypeError as exc:
            raise InputFormatError(f"{path}: record {n} (id {raw_id!r}): {exc}") from exc
        yield TextRecord(str(raw_id), text)


def _parquet_records(path: Path, fields: CorpusFields) -> Iterator[TextRecord]:
    names = open_parquet(path).schema_arrow.names
    if fields.id not in names and "id" not in names:
        raise InputFormatError(f"{path}: no {fields.id!r} (or 'id') column (columns: {', '.join(names)})")
    id_field = fields.id if fields.id in names else "id"
    yield from iter_text_records(
        path, text_field=fields.text, title_field=fields.title, id_field=id_field, fmt="parquet"
    )


def iter_corpus(
    files: Sequence[Path],
    *,
    fields: CorpusFields = BEIR_FIELDS,
    skip_empty: bool = False,
    skipped: list[str] | None = None,
) -> Iterator[TextRecord]:
    """Records of all files in order; an empty text raises unless `skip_empty` (ids then go to `skipped`)."""
    for path in files:
        fmt = detect_format(path)
        if fmt == "jsonl":
            records = _jsonl_records(path, fields)
        elif fmt == "parquet":
            records = _parquet_records(path, fields)
        else:
            records = iter_text_records(path, fmt="txt")
        for n, rec in enumerate(records, start=1):
            if not rec.text.strip():
                if skip_empty:
                    if skipped is not None:
                        skipped.append(rec.id)
                    continue
                raise InputFormatError(
                    f"{path}: record {n} (id {rec.id!r}) has an empty text; fix it or pass "
                    "skip_empty=True (--skip-empty) to leave such records out"
                )
            yield rec


def records_digest(records: Sequence[TextRecord]) -> str:
    """sha256 over the (id, text) pairs of some records: what a shard was made from."""
    digest = hashlib.sha256()
    for rec in records:
        digest.update(rec.id.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
        digest.update(rec.text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def files_digest(files: Sequence[Path]) -> str:
    """sha256 over the bytes of the corpus files (and their order): a cheap content key for caches."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}\0".encode())
        with open(path, "rb") as fh:
            while block := fh.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()
