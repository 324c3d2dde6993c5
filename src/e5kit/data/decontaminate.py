"""Decontamination: drop pairs whose query or passage equals (after `normalize_text`) any text of an evaluation
set. The evaluation files are read directly: every `*.jsonl[.gz]` under the given folders (BEIR corpus/queries,
STS, classification, clustering, pair classification), taking every text field; BEIR corpus records also count
as `title + " " + text`."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from e5kit.data.pairs import Pair, normalize_text
from e5kit.errors import E5kitError
from e5kit.io.records import iter_jsonl
from e5kit.options import positive_int

TEXT_FIELDS = ("text", "title", "sentence1", "sentence2", "query", "question", "passage", "answer")
DEFAULT_MIN_CHARS = 10  # normalized texts shorter than this ("yes", "ok") are not treated as evaluation text


def default_eval_dirs() -> list[Path]:
    """The evaluation sets e5kit knows: $E5KIT_EVAL_DATA (os.pathsep-separated) or the project's shared/data."""
    env = os.environ.get("E5KIT_EVAL_DATA")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    shared = Path(__file__).resolve().parents[4] / "shared" / "data"
    return [shared] if shared.is_dir() else []


def _eval_files(folder: Path) -> list[Path]:
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise FileNotFoundError(f"no such evaluation folder: {folder}")
    return sorted(f for f in folder.rglob("*") if f.name.endswith((".jsonl", ".jsonl.gz")))


def iter_eval_texts(path: Path) -> Iterator[str]:
    """Every text of one evaluation file (each text field, and title + text for corpus records)."""
    for obj in iter_jsonl(path):
        for name in TEXT_FIELDS:
            value = obj.get(name)
            if isinstance(value, str):
                yield value
        if isinstance(obj.get("title"), str) and isinstance(obj.get("text"), str) and obj["title"]:
            yield f"{obj['title']} {obj['text']}"


def text_key(text: str) -> int:
    """64-bit key of a normalized text (a set of ints holds millions of texts in little memory)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


class Decontaminator:
    """Knows the normalized texts of evaluation sets and tells whether a pair touches any of them."""

    name = "decontaminate"

    def __init__(self, folders: Sequence[str | os.PathLike[str]] | None = None, *,
                 min_chars: int = DEFAULT_MIN_CHARS) -> None:
        positive_int("min_chars", min_chars)
        dirs = [Path(f) for f in folders] if folders is not None else default_eval_dirs()
        if not dirs:
            raise E5kitError("no evaluation data to decontaminate against; pass folders or set E5KIT_EVAL_DATA")
        self.min_chars = min_chars
        self.keys: set[int] = set()
        self.files: dict[str, int] = {}
        for folder in dirs:
            for path in _eval_files(folder):
                self.files[str(path)] = self._add(iter_eval_texts(path))
        self.matched: dict[str, int] = {}

    def _add(self, texts: Iterable[str]) -> int:
        n = 0
        for text in texts:
            norm = normalize_text(text)
            if len(norm) >= self.min_chars:
                self.keys.add(text_key(norm))
                n += 1
        return n

    def matches(self, text: str) -> bool:
        norm = normalize_text(text)
        return len(norm) >= self.min_chars and text_key(norm) in self.keys

    def __call__(self, pair: Pair) -> str | None:
        """None to keep the pair, else the reason it is dropped."""
        if self.matches(pair.query):
            return "eval_query_match"
        if self.matches(pair.passage):
            return "eval_passage_match"
        return None

    def summary(self) -> dict[str, Any]:
        return {"eval_texts": len(self.keys), "files": self.files, "min_chars": self.min_chars}
