"""StackExchange: (question title + body, answer) from a site's `Posts.xml` (the public dump layout: one
`<row .../>` per post, PostTypeId 1 = question, 2 = answer with ParentId).

The answer is the accepted one when its score is at least `min_score`, else the best-scored answer with score
>= `min_score`. Two streaming passes keep memory to a few integers per question plus the texts of questions
whose chosen answer has not been read yet (answers follow their question in dump order)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from e5kit.data.dumps import html_to_text, open_dump
from e5kit.data.pairs import Pair, clean_space
from e5kit.errors import InputFormatError

NAME = "stackexchange"


def _rows(path: Path) -> Iterator[dict[str, str]]:
    from lxml import etree

    with open_dump(path) as fh:
        try:
            for _, el in etree.iterparse(fh, events=("end",), tag="row", huge_tree=True, recover=False):
                yield dict(el.attrib)
                el.clear()
                while el.getprevious() is not None:
                    del el.getparent()[0]
        except etree.XMLSyntaxError as exc:
            raise InputFormatError(f"{path}: not a StackExchange Posts.xml ({exc})") from exc


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def choose_answers(path: Path, min_score: int) -> dict[int, int]:
    """First pass: answer id -> question id of the answer chosen for each question."""
    accepted: dict[int, int] = {}  # question -> accepted answer id
    best: dict[int, tuple[int, int]] = {}  # question -> (score, answer id), best with score >= min_score
    accepted_score: dict[int, int] = {}
    for row in _rows(path):
        kind = row.get("PostTypeId")
        if kind == "1" and row.get("AcceptedAnswerId"):
            accepted[_int(row.get("Id"))] = _int(row["AcceptedAnswerId"])
        elif kind == "2":
            qid, aid, score = _int(row.get("ParentId")), _int(row.get("Id")), _int(row.get("Score"))
            accepted_score[aid] = score
            if score >= min_score and (qid not in best or score > best[qid][0]):
                best[qid] = (score, aid)
    chosen = {qid: aid for qid, (_, aid) in best.items()}
    for qid, aid in accepted.items():
        if accepted_score.get(aid, min_score - 1) >= min_score:
            chosen[qid] = aid
    return {aid: qid for qid, aid in chosen.items()}


def iter_file(path: str | os.PathLike[str], *, min_score: int = 1, max_answer_chars: int = 8000) -> Iterator[Pair]:
    path = Path(path)
    answer_of = choose_answers(path, min_score)
    wanted_questions = set(answer_of.values())
    pending_q: dict[int, str] = {}
    pending_a: dict[int, tuple[str, int]] = {}
    for row in _rows(path):
        pid = _int(row.get("Id"))
        if row.get("PostTypeId") == "1" and pid in wanted_questions:
            query = clean_space(f"{row.get('Title', '')} {html_to_text(row.get('Body', ''))}")
            if pid in pending_a:
                answer, score = pending_a.pop(pid)
                yield Pair(query, answer, NAME, {"question_id": pid, "score": score})
            else:
                pending_q[pid] = query
        elif row.get("PostTypeId") == "2" and pid in answer_of:
            qid = answer_of[pid]
            answer = html_to_text(row.get("Body", ""))[:max_answer_chars]
            score = _int(row.get("Score"))
            if qid in pending_q:
                yield Pair(pending_q.pop(qid), answer, NAME, {"question_id": qid, "score": score})
            else:
                pending_a[qid] = (answer, score)
