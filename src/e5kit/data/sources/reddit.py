"""Reddit: (post title + text, top-level comment) from Pushshift-style JSON lines of submissions (`RS_*`, records
with `title`) and comments (`RC_*`, records with `body` and `link_id`), in any mix of files.

As in E5, comments longer than `max_comment_chars` (4,096) or with score below `min_score` (1) are dropped. Per
post, the best-scored remaining top-level comment is kept. Posts and chosen comments are joined in an on-disk
SQLite table, so memory stays bounded whatever the dump size."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from e5kit.data.dumps import open_dump_text
from e5kit.data.pairs import Pair, clean_space
from e5kit.io.bad_records import BadRecords, iter_records

NAME = "reddit"
_GONE = {"[deleted]", "[removed]", ""}


def _records(path: Path, bad: BadRecords) -> Iterator[dict]:
    """Records with the fields the join reads, typed; Pushshift dumps hold a few broken lines, which the
    bad-record policy counts (and tolerates up to its fraction)."""
    for obj, where in iter_records(path, bad, opener=open_dump_text):
        problem = _check(obj)
        if problem:
            bad.skip(where, problem)
            continue
        bad.ok()
        yield obj


def _check(obj: dict) -> str | None:
    """What is wrong with a submission or comment record's types, or None."""
    for name in ("title", "selftext", "body", "id", "link_id", "parent_id", "subreddit"):
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            return f"field {name!r} must be a string, got {type(value).__name__}"
    score = obj.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float)) or score != int(score)):
        return f"field 'score' must be an integer, got {score!r}"
    return None


def _base36_id(value: str) -> str:
    return value.split("_", 1)[1] if "_" in value else value


def iter_inputs(paths: Sequence[str | os.PathLike[str]], *, min_score: int = 1, max_comment_chars: int = 4096,
                workdir: str | None = None, bad: BadRecords | None = None) -> Iterator[Pair]:
    bad = bad or BadRecords.strict("input records")
    with tempfile.TemporaryDirectory(dir=workdir, prefix="e5kit-reddit-") as tmp:
        db = sqlite3.connect(Path(tmp) / "join.sqlite")
        db.execute("CREATE TABLE post (id TEXT PRIMARY KEY, text TEXT, subreddit TEXT)")
        db.execute("CREATE TABLE best (link TEXT PRIMARY KEY, score INTEGER, body TEXT, id TEXT)")
        for path in paths:
            for obj in _records(Path(path), bad):
                if "title" in obj:
                    text = clean_space(f"{obj.get('title') or ''} {_keep(obj.get('selftext'))}")
                    db.execute("INSERT OR IGNORE INTO post VALUES (?, ?, ?)",
                               (str(obj.get("id", "")), text, obj.get("subreddit")))
                elif "body" in obj and "link_id" in obj:
                    body, score = _keep(obj.get("body")), int(obj.get("score") or 0)
                    top_level = str(obj.get("parent_id", "")).startswith("t3_")
                    if top_level and body and score >= min_score and len(body) <= max_comment_chars:
                        db.execute("INSERT INTO best VALUES (?, ?, ?, ?) ON CONFLICT(link) DO UPDATE SET "
                                   "score=excluded.score, body=excluded.body, id=excluded.id "
                                   "WHERE excluded.score > best.score",
                                   (_base36_id(str(obj["link_id"])), score, body, str(obj.get("id", ""))))
            db.commit()
        rows = db.execute("SELECT post.text, best.body, post.id, best.id, best.score, post.subreddit "
                          "FROM best JOIN post ON post.id = best.link ORDER BY post.id")
        for text, body, post_id, comment_id, score, subreddit in rows:
            if text:
                yield Pair(text, clean_space(body), NAME, {"post": post_id, "comment": comment_id,
                                                           "score": score, "subreddit": subreddit})
        db.close()


def _keep(text: object) -> str:
    return "" if not isinstance(text, str) or text.strip() in _GONE else text
