"""What the labeled-data readers share (data/sources/beir.py, msmarco.py): relevance judgements (qrels), id -> text
lookups that keep only the ids a qrels names, and the count of ids a qrels names but a file lacks.

Labeled sets are read in the order "qrels first": the judgements are small, so they are read whole; the
corpus and the queries are then streamed once, keeping only the texts the judgements need (MS MARCO's 8.8 M
passages never sit in memory for its 530 k judged ones). A judged id missing from the corpus or the queries
is counted and reported (logged once per reader with the first few ids), never fatal.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from e5kit.errors import InputFormatError
from e5kit.io.records import TextRecord, open_text

log = logging.getLogger("e5kit")
SHOWN_MISSING = 5  # ids quoted in the report


@dataclass
class Qrels:
    """Positive judgements (query id -> doc ids, in file order) and how many lines were not positive."""

    positives: dict[str, list[str]] = field(default_factory=dict)
    not_positive: int = 0

    @property
    def doc_ids(self) -> set[str]:
        return {d for docs in self.positives.values() for d in docs}

    def __len__(self) -> int:
        return sum(len(docs) for docs in self.positives.values())


def read_qrels(path: str | os.PathLike[str], *, min_score: int = 1) -> Qrels:
    """Judgements with score >= `min_score` from a BEIR qrels TSV (`query-id corpus-id score`, header line)
    or a TREC qrels file (`qid 0 docid rel`, whitespace separated, no header)."""
    out = Qrels()
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            if lineno == 1 and not parts[-1].lstrip("-").isdigit():
                continue  # header
            if len(parts) == 4:  # TREC: qid iteration docid relevance
                qid, did, score = parts[0], parts[2], parts[3]
            elif len(parts) == 3:
                qid, did, score = parts
            else:
                raise InputFormatError(f"{path}:{lineno}: expected 'query-id corpus-id score' (3 columns) or "
                                       f"'qid 0 docid rel' (4 columns), got {len(parts)} columns")
            try:
                value = int(float(score))
            except ValueError as exc:
                raise InputFormatError(f"{path}:{lineno}: score {score!r} is not a number") from exc
            if value < min_score:
                out.not_positive += 1
                continue
            docs = out.positives.setdefault(qid, [])
            if did not in docs:
                docs.append(did)
    return out


def iter_tsv_texts(path: str | os.PathLike[str]) -> Iterator[TextRecord]:
    """`id<TAB>text` lines (MS MARCO collection and queries files); a line without a tab is an error."""
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                continue
            rid, sep, text = line.partition("\t")
            if not sep:
                raise InputFormatError(f"{path}:{lineno}: expected 'id<TAB>text', found no tab")
            yield TextRecord(rid, text)


def keep_texts(records: Iterable[TextRecord], wanted: set[str]) -> dict[str, str]:
    """id -> text for the records whose id is wanted (streamed; the rest are dropped as read)."""
    return {rec.id: rec.text for rec in records if rec.id in wanted}


@dataclass
class MissingIds:
    """Ids a qrels names that the corpus or the queries lack: counted per kind, reported once."""

    source: str
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, rid: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < SHOWN_MISSING:
            shown.append(rid)

    def report(self) -> None:
        """Log one warning per kind of missing id (nothing when none was missing)."""
        for kind, n in self.counts.items():
            log.warning("%s: %d judgement(s) name a %s id missing from the %s file; skipped (first: %s)",
                        self.source, n, kind, "corpus" if kind == "document" else "queries",
                        ", ".join(self.examples[kind]))
