"""DPR-style retriever training files (NQ, TriviaQA, ... `biencoder-nq-train.json`): a JSON array (or JSON
Lines) of {"question", "answers", "positive_ctxs": [{"title", "text", ...}], "hard_negative_ctxs": [...],
"negative_ctxs": [...]}. One pair per question: (question, title + " " + text of the first positive context),
negatives = the hard negative contexts (option `negative_ctxs=true` appends the random ones too), at most
`max_negatives`. Questions without a positive context are skipped and counted. The array is parsed one
object at a time, so a multi-gigabyte file is never held whole."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import IO, Any

from e5kit.data.pairs import Pair
from e5kit.errors import InputFormatError
from e5kit.io.records import detect_format, iter_jsonl, join_title, open_text

NAME = "dpr"
CHUNK = 1 << 20
log = logging.getLogger("e5kit")


def iter_json_array(fh: IO[str], where: str) -> Iterator[Any]:
    """The items of a top-level JSON array, decoded one by one from a text stream."""
    decoder = json.JSONDecoder()
    buf, pos, started = "", 0, False
    while True:
        while True:  # skip whitespace, the opening bracket and separators
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                pos += 1
            if pos < len(buf) or not (more := fh.read(CHUNK)):
                break
            buf, pos = buf[pos:] + more, 0
        if pos >= len(buf):
            raise InputFormatError(f"{where}: the JSON array is not closed")
        if not started:
            if buf[pos] != "[":
                raise InputFormatError(f"{where}: expected a JSON array of questions (or a .jsonl file)")
            started, pos = True, pos + 1
            continue
        if buf[pos] == "]":
            return
        try:
            item, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as exc:
            more = fh.read(CHUNK)
            if not more:
                raise InputFormatError(f"{where}: malformed JSON ({exc.msg})") from exc
            buf, pos = buf[pos:] + more, 0
            continue
        yield item
        buf, pos = buf[end:], 0


def _context(ctx: Any, where: str) -> str:
    if not isinstance(ctx, dict) or not isinstance(ctx.get("text"), str):
        raise InputFormatError(f"{where}: a context must be an object with a 'text' string")
    title = ctx.get("title")
    return join_title(title if isinstance(title, str) else None, ctx["text"])


def iter_file(path: str | os.PathLike[str], *, max_negatives: int = 30, negative_ctxs: bool = False) -> Iterator[Pair]:
    if detect_format(path) == "jsonl" and not str(path).endswith(".json.gz"):
        items: Iterator[Any] = iter_jsonl(path)
    else:
        fh = open_text(path)
        items = _closing(fh, iter_json_array(fh, str(path)))
    skipped = 0
    for n, item in enumerate(items, start=1):
        where = f"{path}: question {n}"
        if not isinstance(item, dict) or not isinstance(item.get("question"), str):
            raise InputFormatError(f"{where}: expected an object with a 'question' string")
        positives = item.get("positive_ctxs") or []
        if not positives:
            skipped += 1
            continue
        negs = [_context(c, where) for c in item.get("hard_negative_ctxs") or []]
        if negative_ctxs:
            negs += [_context(c, where) for c in item.get("negative_ctxs") or []]
        meta = {"answers": item.get("answers", [])}
        if isinstance(positives[0], dict) and positives[0].get("passage_id") is not None:
            meta["doc_id"] = str(positives[0]["passage_id"])
        yield Pair(item["question"], _context(positives[0], where), NAME, meta, negs[:max_negatives] or None)
    if skipped:
        log.warning("%s: %d question(s) without a positive context skipped", path, skipped)


def _closing(fh: IO[str], items: Iterator[Any]) -> Iterator[Any]:
    with fh:
        yield from items
