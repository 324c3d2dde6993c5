"""The pair record: built by `data`, filtered, written to shards and read by `train` (one definition).

Fields: `query`, `passage`, `source`, `id` (content hash), optional `meta`, optional `negatives` (hard negative
passages) and optional `teacher_scores` (a cross-encoder's scores of [passage, *negatives], for distillation)."""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from e5kit.errors import InputFormatError

_SPACE = re.compile(r"\s+")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def clean_space(text: str) -> str:
    """Collapse every whitespace run to one space and strip the ends."""
    return _SPACE.sub(" ", text).strip()


def normalize_text(text: str) -> str:
    """The form used for exact matching (dedup, decontamination): NFKC, casefolded, punctuation and
    whitespace runs collapsed to one space."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def pair_id(query: str, passage: str) -> str:
    """Stable content hash of a pair (32 hex chars): the same texts always get the same id, whatever the source."""
    h = hashlib.blake2b(digest_size=16)
    h.update(query.encode("utf-8"))
    h.update(b"\x1f")
    h.update(passage.encode("utf-8"))
    return h.hexdigest()


@dataclass
class Pair:
    """One weak training pair. `meta` holds source details (url, score, package, ...)."""

    query: str
    passage: str
    source: str
    meta: dict[str, Any] = field(default_factory=dict)
    negatives: list[str] | None = None
    id: str = ""
    teacher_scores: list[float] | None = None  # [positive, *negatives], aligned with `negatives`

    def __post_init__(self) -> None:
        if not self.id:
            self.id = pair_id(self.query, self.passage)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "query": self.query, "passage": self.passage, "source": self.source}
        if self.meta:
            d["meta"] = self.meta
        if self.negatives:
            d["negatives"] = list(self.negatives)
        if self.teacher_scores is not None:
            d["teacher_scores"] = list(self.teacher_scores)
        return d

    @classmethod
    def from_dict(cls, obj: Any, where: str = "record", *, default_source: str | None = None) -> Pair:
        """A Pair from a shard record; a malformed one raises InputFormatError naming `where` and the field.

        `default_source` fills a missing "source" (training reads shards of any origin under a source name).
        """
        if not isinstance(obj, dict):
            raise InputFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        source = obj.get("source") if obj.get("source") is not None else default_source
        for name, value in (("query", obj.get("query")), ("passage", obj.get("passage")), ("source", source)):
            if not isinstance(value, str):
                raise InputFormatError(f"{where}: field {name!r} must be a string (fields: {', '.join(sorted(obj))})")
        meta = obj.get("meta") or {}
        negatives = obj.get("negatives")
        if not isinstance(meta, dict):
            raise InputFormatError(f"{where}: 'meta' must be an object")
        if negatives is not None and not (isinstance(negatives, list) and all(isinstance(n, str) for n in negatives)):
            raise InputFormatError(f"{where}: 'negatives' must be a list of strings")
        return cls(obj["query"], obj["passage"], source, meta, negatives, str(obj.get("id") or ""),
                   _teacher_scores(obj.get("teacher_scores"), negatives, where))


def _teacher_scores(value: Any, negatives: list[str] | None, where: str) -> list[float] | None:
    """Validated teacher scores: finite numbers, one for the passage and one per negative."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise InputFormatError(f"{where}: 'teacher_scores' must be a list of numbers")
    want = 1 + len(negatives or [])
    if len(value) != want:
        raise InputFormatError(f"{where}: 'teacher_scores' has {len(value)} values; expected {want} "
                               "(the passage, then one per negative)")
    if not all(math.isfinite(v) for v in value):
        raise InputFormatError(f"{where}: 'teacher_scores' must be finite numbers")
    return [float(v) for v in value]
