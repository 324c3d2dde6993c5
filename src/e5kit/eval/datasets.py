"""Readers for evaluation data: BEIR retrieval folders, sentence-pair files, labelled-text files.

All JSONL goes through e5kit.io.records.iter_jsonl, so a malformed line names its file and line.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e5kit.errors import InputFormatError
from e5kit.io.records import iter_jsonl, open_text

JSONL_NAMES = (".jsonl", ".jsonl.gz")


def find_jsonl(folder: Path, stem: str) -> Path:
    """`folder/stem.jsonl` or `folder/stem.jsonl.gz`; FileNotFoundError naming both otherwise."""
    for suffix in JSONL_NAMES:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no {stem}.jsonl or {stem}.jsonl.gz in {folder}")


@dataclass
class RetrievalData:
    """One split of a BEIR-layout dataset: corpus, the judged queries, and their qrels."""

    corpus_ids: list[str]
    corpus: list[dict[str, str]]  # {"title", "text"}
    query_ids: list[str]
    queries: list[str]
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> graded relevance
    dropped_queries: int = 0  # queries of the qrels file without judgements or text

    def counts(self) -> dict[str, int]:
        return {"corpus": len(self.corpus_ids), "queries": len(self.query_ids),
                "qrels": sum(len(d) for d in self.qrels.values()), "dropped_queries": self.dropped_queries}


def _str_field(obj: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = obj.get(key, None if required else "")
    if value is None:
        raise InputFormatError(f"{where}: missing {key!r} (fields: {', '.join(sorted(obj))})")
    if isinstance(value, (int, float)) and key in ("_id", "id"):
        value = str(value)
    if not isinstance(value, str):
        raise InputFormatError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    return value


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """BEIR qrels TSV (header query-id, corpus-id, score) -> {qid: {docid: score}}."""
    if not path.is_file():
        raise FileNotFoundError(f"no qrels file {path}")
    qrels: dict[str, dict[str, int]] = {}
    with open_text(path) as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if not row or (lineno == 1 and row[0].strip().lower() in ("query-id", "query_id", "qid")):
                continue
            if len(row) < 3:
                raise InputFormatError(f"{path}:{lineno}: expected query-id<TAB>corpus-id<TAB>score, "
                                       f"got {row!r}")
            try:
                score = int(float(row[2]))
            except ValueError as exc:
                raise InputFormatError(f"{path}:{lineno}: score {row[2]!r} is not a number") from exc
            qrels.setdefault(row[0], {})[row[1]] = score
    return qrels


def load_beir(folder: str | os.PathLike[str], split: str = "test") -> RetrievalData:
    """Read corpus.jsonl[.gz], queries.jsonl[.gz] and qrels/<split>.tsv from a BEIR folder.

    As mteb does, only queries judged in the split are kept (and in qrels order of first
    appearance); qrels naming documents missing from the corpus are kept (they count as
    unretrieved relevant documents, as in pytrec_eval).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"retrieval dataset folder not found: {folder}")
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv")
    corpus_path = find_jsonl(folder, "corpus")
    corpus_ids: list[str] = []
    corpus: list[dict[str, str]] = []
    for i, obj in enumerate(iter_jsonl(corpus_path)):
        where = f"{corpus_path}: record {i + 1}"
        corpus_ids.append(_str_field(obj, "_id", where))
        corpus.append({"title": _str_field(obj, "title", where, required=False) or "",
                       "text": _str_field(obj, "text", where)})
    if not corpus_ids:
        raise InputFormatError(f"{corpus_path}: the corpus is empty")
    query_path = find_jsonl(folder, "queries")
    texts: dict[str, str] = {}
    for i, obj in enumerate(iter_jsonl(query_path)):
        where = f"{query_path}: record {i + 1}"
        texts[_str_field(obj, "_id", where)] = _str_field(obj, "text", where)
    judged = [q for q, docs in qrels.items() if docs and q in texts]
    if not judged:
        raise InputFormatError(f"{folder}: no query of qrels/{split}.tsv has text in {query_path.name}")
    return RetrievalData(corpus_ids, corpus, judged, [texts[q] for q in judged],
                         {q: qrels[q] for q in judged}, dropped_queries=len(qrels) - len(judged))


def load_pairs(path: str | os.PathLike[str], *, target: str) -> tuple[list[str], list[str], list[float]]:
    """Sentence pairs {"sentence1", "sentence2", target} -> three aligned lists (target as float)."""
    s1: list[str] = []
    s2: list[str] = []
    ys: list[float] = []
    for i, obj in enumerate(iter_jsonl(path)):
        where = f"{path}: record {i + 1}"
        s1.append(_str_field(obj, "sentence1", where))
        s2.append(_str_field(obj, "sentence2", where))
        y = obj.get(target)
        if isinstance(y, bool) or not isinstance(y, (int, float)):
            raise InputFormatError(f"{where}: {target!r} must be a number, got {y!r}")
        ys.append(float(y))
    if not s1:
        raise InputFormatError(f"{path}: no sentence pairs")
    return s1, s2, ys


def load_labelled(path: str | os.PathLike[str]) -> tuple[list[str], list[Any]]:
    """Labelled texts {"text", "label"} -> (texts, labels); labels are str or int as stored."""
    texts: list[str] = []
    labels: list[Any] = []
    for i, obj in enumerate(iter_jsonl(path)):
        where = f"{path}: record {i + 1}"
        texts.append(_str_field(obj, "text", where))
        label = obj.get("label")
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise InputFormatError(f"{where}: 'label' must be a str or int, got {label!r}")
        labels.append(label)
    if not texts:
        raise InputFormatError(f"{path}: no labelled texts")
    return texts, labels
