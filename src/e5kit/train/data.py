"""Pair shards as a resumable stream: sources mixed by weight, a seeded shuffle buffer, bad records counted.

Shards are JSONL / JSONL.gz or Parquet (read under e5kit.io.bad_records' policy), one pair per record:
{"query": str, "passage": str, "source"?: str, "negatives"?: [str, ...]}. Nothing is read whole: each
source reads its files one record at a time, cycling over them (file order reshuffled each epoch), and
the stream keeps at most `buffer_size` pairs. `state()` captures everything needed to continue exactly
where it stopped (reader positions, buffer, RNG, bad-record counts), so a resumed run sees the same pairs.
"""

from __future__ import annotations

import glob
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from e5kit.data.pairs import Pair
from e5kit.errors import InputFormatError
from e5kit.io.bad_records import DEFAULT_MAX_BAD_FRACTION, BadRecords, iter_records
from e5kit.io.records import detect_format


def pair_from_record(obj: Any, source: str, where: str = "record") -> Pair:
    """A Pair from one decoded record (`source` when it names none), or ValueError saying what is wrong."""
    pair = Pair.from_dict(obj, where, default_source=source)
    if not pair.query.strip() or not pair.passage.strip():
        raise ValueError("empty 'query' or 'passage'")
    return pair


def expand_paths(patterns: Sequence[str]) -> list[str]:
    """Files named by `patterns` (globs allowed, folders give their shard files), sorted, or an error."""
    files: list[str] = []
    for pat in patterns:
        if os.path.isdir(pat):
            found = [str(f) for f in sorted(Path(pat).iterdir())
                     if f.name.endswith((".jsonl", ".jsonl.gz", ".parquet"))]
        else:
            found = sorted(glob.glob(pat)) if any(c in pat for c in "*?[") else [pat] if os.path.isfile(pat) else []
        if not found:
            raise InputFormatError(f"pair shard path {pat!r} matches no file")
        files.extend(found)
    for f in files:
        fmt = detect_format(f)
        if fmt not in ("jsonl", "parquet"):
            raise InputFormatError(f"{f}: pair shards must be .jsonl, .jsonl.gz or .parquet, not {fmt}")
    return files


def _records(path: str, bad: BadRecords, skip: int) -> Iterator[tuple[Any, str]]:
    """(decoded record, "file:line") pairs, after skipping `skip` records (those are not counted again)."""
    return iter_records(path, bad, skip=skip)


class SourceReader:
    """Pairs of one source, cycling over its files forever; position = (epoch, file, record)."""

    def __init__(self, name: str, files: list[str], *, seed: int, bad: BadRecords) -> None:
        self.name, self.files, self.seed, self.bad = name, files, seed, bad
        self.epoch, self.file_idx, self.record = 0, 0, 0
        self._it: Iterator[tuple[Any, str]] | None = None
        self._good_this_epoch = 0

    def _order(self) -> list[str]:
        order = list(self.files)
        if self.epoch > 0:  # first pass in the given order; later passes reshuffled, seeded
            random.Random(f"{self.seed}/{self.name}/{self.epoch}").shuffle(order)
        return order

    def next(self) -> Pair:
        while True:
            if self._it is None:
                self._it = _records(self._order()[self.file_idx], self.bad, self.record)
            item = next(self._it, None)
            if item is None:  # end of file: judge the bad share, move on
                self.bad.check()
                self._it, self.record = None, 0
                self.file_idx += 1
                if self.file_idx == len(self.files):
                    if self._good_this_epoch == 0:
                        raise InputFormatError(f"source {self.name!r}: no valid pair in {len(self.files)} file(s)")
                    self.epoch, self.file_idx, self._good_this_epoch = self.epoch + 1, 0, 0
                continue
            self.record += 1
            obj, where = item
            try:
                pair = pair_from_record(obj, self.name, where)
            except ValueError as exc:
                self.bad.skip(where, str(exc))
                continue
            self.bad.ok()
            self._good_this_epoch += 1
            return pair

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "file_idx": self.file_idx, "record": self.record,
                "good_this_epoch": self._good_this_epoch}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.file_idx, self.record = int(state["epoch"]), int(state["file_idx"]), int(state["record"])
        self._good_this_epoch = int(state.get("good_this_epoch", 1))
        self._it = None


class PairStream:
    """Endless, seeded, resumable stream of Pairs mixed from weighted sources through a shuffle buffer."""

    def __init__(self, sources: Sequence[tuple[str, Sequence[str], float]], *, seed: int = 0,
                 buffer_size: int = 10_000, max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
                 bad_log: Path | None = None) -> None:
        if not sources:
            raise InputFormatError("no pair sources given")
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        self.bad = BadRecords(max_bad_fraction, bad_log, what="pair records")
        self.readers = [SourceReader(name, expand_paths(paths), seed=seed, bad=self.bad)
                        for name, paths, _ in sources]
        self.weights = [float(w) for _, _, w in sources]
        if any(not w > 0 for w in self.weights):
            raise ValueError(f"source weights must be > 0, got {self.weights}")
        self.buffer_size = buffer_size
        self.rng = random.Random(seed)
        self.buffer: list[Pair] = []

    def next(self) -> Pair:
        while len(self.buffer) < self.buffer_size:
            (reader,) = self.rng.choices(self.readers, weights=self.weights)
            self.buffer.append(reader.next())
        i = self.rng.randrange(len(self.buffer))
        self.buffer[i], self.buffer[-1] = self.buffer[-1], self.buffer[i]
        return self.buffer.pop()

    def take(self, n: int) -> list[Pair]:
        return [self.next() for _ in range(n)]

    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate(), "buffer": [asdict(p) for p in self.buffer],
                "readers": [r.state() for r in self.readers], "bad": self.bad.state()}

    def load_state(self, state: dict[str, Any]) -> None:
        if len(state["readers"]) != len(self.readers):
            raise ValueError(f"saved data state has {len(state['readers'])} sources, config has {len(self.readers)}")
        rng = state["rng"]
        self.rng.setstate((rng[0], tuple(rng[1]), rng[2]))
        self.buffer = [Pair(**p) for p in state["buffer"]]
        for reader, st in zip(self.readers, state["readers"], strict=True):
            reader.load_state(st)
        self.bad.load_state(state["bad"])
