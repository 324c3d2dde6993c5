"""THE bad-record policy of every stage that reads records (pairs build, clean, filter; train).

A malformed record (bad JSON, a value of the wrong type, a missing field) is skipped and counted; each skip is
listed with its file and line (JSONL) or row (Parquet): the first few as warnings, all of them in a log file
when one is given. Once `min_seen` records were read, and whenever a stage calls `check()` or `finish()`, more
than `max_fraction` bad records stops the stage with an error naming the count, the fraction and the log. A
strict policy (`BadRecords.strict()`, what a reader gets when given none) stops at the first bad record.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from e5kit.errors import InputFormatError
from e5kit.io.records import iter_jsonl, open_text

log = logging.getLogger("e5kit")

DEFAULT_MAX_BAD_FRACTION = 0.01
MIN_SEEN_FOR_FRACTION = 100  # the fraction is judged once this many records were seen (or when a stage asks)


def check_fraction(value: Any, name: str = "max_bad_fraction") -> float:
    """`value` as a float in [0, 1], or an error naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
    if math.isnan(value) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
    return float(value)


class BadRecords:
    """Counts records seen and skipped; logs each skip with its place; fails above `max_fraction`.

    Readers call `ok()` for a good record and `skip(where, reason)` for a bad one; a stage calls `check()`
    where it wants the fraction judged (e.g. at the end of a file) and `finish()` at its end.
    """

    def __init__(self, max_fraction: float = DEFAULT_MAX_BAD_FRACTION, log_path: str | os.PathLike[str] | None = None,
                 *, what: str = "records", max_logged: int = 20) -> None:
        self.max_fraction = check_fraction(max_fraction)
        self.log_path = Path(log_path) if log_path is not None else None
        self.what = what
        self.max_logged = max_logged
        self.seen = 0
        self.bad = 0
        self._strict = False

    @classmethod
    def strict(cls, what: str = "records") -> BadRecords:
        """A policy that raises InputFormatError at the first bad record (naming where and why)."""
        policy = cls(0.0, what=what)
        policy._strict = True
        return policy

    def ok(self) -> None:
        self.seen += 1

    def skip(self, where: str, reason: str) -> None:
        """Count one bad record at `where` ("file:line"); `reason` says what is wrong with it."""
        reason = reason.removeprefix(f"{where}: ")
        if self._strict:
            raise InputFormatError(f"{where}: {reason}")
        self.seen += 1
        self.bad += 1
        if self.bad <= self.max_logged:
            log.warning("skipped a malformed record at %s: %s", where, reason)
        if self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(f"{where}\t{reason}\n")
        if self.seen >= MIN_SEEN_FOR_FRACTION:
            self.check()

    def check(self) -> None:
        """Raise InputFormatError when the skipped share exceeds `max_fraction`."""
        if self.seen and self.bad / self.seen > self.max_fraction:
            where = f" (listed in {self.log_path})" if self.log_path else ""
            raise InputFormatError(
                f"{self.bad} of {self.seen} {self.what} were malformed ({self.bad / self.seen:.1%}), more than "
                f"max_bad_fraction={self.max_fraction}{where}; fix the input or raise --max-bad-fraction"
            )

    def finish(self) -> dict[str, Any]:
        """Judge the fraction once more, say how many were skipped, and return the summary."""
        self.check()
        if self.bad:
            where = f" (listed in {self.log_path})" if self.log_path else ""
            log.warning("skipped %d malformed of %d %s%s", self.bad, self.seen, self.what, where)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        return {"seen": self.seen, "bad": self.bad, "max_fraction": self.max_fraction,
                "log": str(self.log_path) if self.log_path else None}

    def add(self, *, seen: int, bad: int) -> None:
        """Add the counts of work finished earlier (a resumed stage does not read it again)."""
        self.seen += int(seen)
        self.bad += int(bad)

    def state(self) -> dict[str, int]:
        return {"seen": self.seen, "bad": self.bad}

    def load_state(self, state: dict[str, int]) -> None:
        self.seen, self.bad = int(state["seen"]), int(state["bad"])


class _CountedLines:
    """A text stream that remembers the number of the line last read (so a record's line is known)."""

    def __init__(self, fh: IO[str]) -> None:
        self.fh = fh
        self.lineno = 0

    def __enter__(self) -> _CountedLines:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.fh.close()

    def __iter__(self) -> Iterator[str]:
        for line in self.fh:
            self.lineno += 1
            yield line


def iter_records(path: str | os.PathLike[str], bad: BadRecords | None = None, *, skip: int = 0,
                 opener: Callable[[str | os.PathLike[str]], IO[str]] = open_text) -> Iterator[tuple[Any, str]]:
    """(record, where) of a JSON Lines file (where = "file:line") or a Parquet file ("file: row n").

    Malformed JSON lines go to `bad` (default: strict, so the first one raises). The first `skip` records are
    passed over, and bad lines before them not counted again (a resumed reader counted them already).
    `opener` reads dumps in other compressions.
    """
    bad = bad or BadRecords.strict()
    if str(path).endswith(".parquet"):
        import pyarrow.parquet as pq

        row = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            for obj in batch.to_pylist():
                row += 1
                if row > skip:
                    yield obj, f"{path}: row {row}"
        return
    lines: list[_CountedLines] = []

    def counted(p: str | os.PathLike[str]) -> _CountedLines:
        lines.append(_CountedLines(opener(p)))
        return lines[-1]

    json_bad: list[tuple[int, str]] = []
    n = 0
    for obj in iter_jsonl(path, skip_bad=True, bad=json_bad, opener=counted):
        n += 1
        if n > skip:
            _report_json(bad, path, json_bad)
        json_bad.clear()
        if n > skip:
            yield obj, f"{path}:{lines[0].lineno}"
    if n >= skip:
        _report_json(bad, path, json_bad)


def _report_json(bad: BadRecords, path: str | os.PathLike[str], found: list[tuple[int, str]]) -> None:
    for lineno, reason in found:
        where = f"{path}:{lineno}"
        bad.skip(where, reason)
