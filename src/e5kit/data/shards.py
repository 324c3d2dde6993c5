"""Pair shards on disk: a writer that rolls shards by size, writes each atomically (temp file + rename) and keeps
a manifest so that an interrupted build resumes; and a streaming reader over a folder of shards.

Layout of an output folder: `<prefix>-00000.jsonl.gz` (or `.parquet`), ... and `<prefix>.manifest.json` listing the
finished shards, their pair counts, the inputs finished so far, the settings they were made with (`info`) and
whether the build is complete; `<prefix>.bad_records.log` lists the malformed input records a stage skipped, and
`.<prefix>.lock` is held while a writer is open, so a second process writing the same shards is refused. Parquet
shards store `meta` as a JSON string (its keys differ between sources).
"""

from __future__ import annotations

import gzip
import heapq
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from e5kit.data.pairs import Pair
from e5kit.data.resume import differences
from e5kit.errors import E5kitError, InputFormatError
from e5kit.io.atomic import atomic_write_json
from e5kit.io.bad_records import DEFAULT_MAX_BAD_FRACTION, BadRecords, check_fraction, iter_records

FORMATS = ("jsonl.gz", "parquet")
SHARD_SUFFIXES = (".jsonl.gz", ".jsonl", ".parquet")
DEFAULT_SHARD_BYTES = 256 << 20
T = TypeVar("T")


@dataclass(frozen=True)
class OutputSettings:
    """How a data stage reads its records, writes its pair shards and splits its work (build, clean, filter)."""

    fmt: str = "jsonl.gz"  # or "parquet"
    shard_bytes: int = DEFAULT_SHARD_BYTES  # roll to a new shard at this size
    part: str | tuple[int, int] | None = None  # "i/n": do only part i of n of the work
    resume: bool = True  # continue an unfinished run with the same settings (else start over)
    show_progress: bool | None = None
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION  # stop when more input records than this are malformed

    def __post_init__(self) -> None:
        check_fraction(self.max_bad_fraction)


def bad_log_path(out_dir: str | os.PathLike[str], prefix: str = "pairs") -> Path:
    """Where a stage writing `prefix` shards lists the malformed records it skipped."""
    return Path(out_dir) / f"{prefix}.bad_records.log"


def remove_shards(out_dir: str | os.PathLike[str], prefix: str) -> None:
    """Delete the `prefix` shards of `out_dir`, their manifest and bad-record log (nothing else)."""
    out_dir = Path(out_dir)
    for path in out_dir.glob(f"{prefix}-*"):
        if path.name.endswith(SHARD_SUFFIXES):
            path.unlink()
    (out_dir / f"{prefix}.manifest.json").unlink(missing_ok=True)
    bad_log_path(out_dir, prefix).unlink(missing_ok=True)


class _FolderLock:
    """An exclusive lock on (folder, prefix) for as long as a writer is open; released by the OS if the process
    dies, so a stale lock never blocks."""

    def __init__(self, out_dir: Path, prefix: str) -> None:
        import fcntl

        self.path = out_dir / f".{prefix}.lock"
        self._fh: IO[str] | None = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "unknown"
            self._fh.close()
            self._fh = None
            raise E5kitError(f"another process is writing {prefix!r} shards in {out_dir} (lock {self.path} held by "
                             f"pid {holder}); wait for it to finish, or write to another folder or --shard part") \
                from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"{os.getpid()}\n")
        self._fh.flush()

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the file drops the lock
            self._fh = None


def read_manifest(out_dir: str | os.PathLike[str], prefix: str = "pairs") -> dict[str, Any] | None:
    """The manifest of `prefix` in `out_dir`, or None when there is none."""
    path = Path(out_dir) / f"{prefix}.manifest.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputFormatError(f"{path}: corrupt manifest ({exc}); delete it to rebuild") from exc


class _ParquetSink:
    """Buffers rows and writes them as row groups to an open binary file."""

    def __init__(self, raw: IO[bytes], rows_per_group: int = 8192) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self.schema = pa.schema([("id", pa.string()), ("query", pa.string()), ("passage", pa.string()),
                                 ("source", pa.string()), ("meta", pa.string()),
                                 ("negatives", pa.list_(pa.string())),
                                 ("teacher_scores", pa.list_(pa.float64()))])
        self.writer = pq.ParquetWriter(raw, self.schema, compression="zstd")
        self.rows: list[dict[str, Any]] = []
        self.rows_per_group = rows_per_group
        self.pending_bytes = 0

    def add(self, pair: Pair) -> None:
        self.rows.append({"id": pair.id, "query": pair.query, "passage": pair.passage, "source": pair.source,
                          "meta": json.dumps(pair.meta, ensure_ascii=False) if pair.meta else None,
                          "negatives": pair.negatives, "teacher_scores": pair.teacher_scores})
        self.pending_bytes += len(pair.query) + len(pair.passage) + 64
        if len(self.rows) >= self.rows_per_group:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(self._pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows, self.pending_bytes = [], 0

    def close(self) -> None:
        self.flush()
        self.writer.close()


class PairWriter:
    """Write pairs into size-rolled shards under `out_dir`, atomically, with a resumable manifest.

    With `resume=True` and an unfinished manifest, finished shards are kept and `resume_from` says how many pairs
    they hold, so the producer skips that many; `inputs_done()` tells which whole inputs can be skipped unread.
    An earlier manifest made with other `info` (the settings) is refused with the differences: resume only with
    identical settings. With `resume=False`, earlier shards of the same prefix are deleted first. A second
    writer of the same folder and prefix is refused while this one is open.
    """

    def __init__(self, out_dir: str | os.PathLike[str], *, fmt: str = "jsonl.gz",
                 shard_bytes: int = DEFAULT_SHARD_BYTES, prefix: str = "pairs", resume: bool = True,
                 info: dict[str, Any] | None = None) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
        if not isinstance(shard_bytes, int) or shard_bytes < 1024:
            raise ValueError(f"shard_bytes must be an int >= 1024, got {shard_bytes!r}")
        if not prefix or "/" in prefix:
            raise ValueError(f"prefix must be a non-empty file-name part, got {prefix!r}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.fmt, self.shard_bytes, self.prefix = fmt, shard_bytes, prefix
        self._lock: _FolderLock | None = _FolderLock(self.out_dir, prefix)
        try:
            self._start(resume, info or {})
        except BaseException:
            self.release()
            raise
        self._raw: IO[bytes] | None = None
        self._sink: Any = None
        self._shard_pairs = 0

    def _start(self, resume: bool, info: dict[str, Any]) -> None:
        for stale in self.out_dir.glob(f"{self.prefix}-*.tmp"):
            stale.unlink()
        old = read_manifest(self.out_dir, self.prefix) if resume else None
        if old is not None and old.get("format") != self.fmt:
            raise E5kitError(f"{self.out_dir}: existing build is {old.get('format')}, not {self.fmt}; use another "
                             "folder")
        if old is not None and (diffs := differences(old.get("info", {}), info)):
            raise E5kitError(f"{self.out_dir}: the {self.prefix!r} shards there were made with other settings: "
                             f"{'; '.join(diffs)}; rerun with the same settings to resume, pass --no-resume "
                             "(resume=False) to start over, or use another folder")
        if old is None:
            self._remove_prefix()
        self.manifest: dict[str, Any] = old or {"format": self.fmt, "prefix": self.prefix, "shards": [], "pairs": 0,
                                               "inputs": [], "done": False, "info": info}
        self.resume_from: int = int(self.manifest["pairs"])
        self.complete: bool = bool(self.manifest.get("done"))
        self.count = self.resume_from

    def _remove_prefix(self) -> None:
        remove_shards(self.out_dir, self.prefix)

    def inputs_done(self) -> dict[str, int]:
        """Inputs whose pairs all sit in finished shards: input -> cumulative pair count at its end."""
        return {d["input"]: d["end"] for d in self._done_entries()}

    def _done_entries(self) -> list[dict[str, Any]]:
        return [d for d in self.manifest["inputs"] if d["end"] <= self.resume_from]

    def bad_counts_done(self) -> dict[str, int]:
        """Records seen and bad in the inputs of `inputs_done()` (they are not read again on resume)."""
        entries = self._done_entries()
        return {"seen": sum(d.get("seen", 0) for d in entries), "bad": sum(d.get("bad", 0) for d in entries)}

    def _shard_path(self) -> Path:
        return self.out_dir / f"{self.prefix}-{len(self.manifest['shards']):05d}.{self.fmt}"

    def _open(self) -> None:
        final = self._shard_path()
        self._raw = open(final.with_name(final.name + ".tmp"), "wb")
        if self.fmt == "parquet":
            self._sink = _ParquetSink(self._raw)
        else:
            self._sink = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6, mtime=0)
        self._shard_pairs = 0

    def write(self, pair: Pair) -> None:
        """Append one pair; rolls to a new shard when the current one reaches `shard_bytes`."""
        if self._raw is None:
            self._open()
        if self.fmt == "parquet":
            self._sink.add(pair)
        else:
            self._sink.write((json.dumps(pair.to_dict(), ensure_ascii=False) + "\n").encode("utf-8"))
        self._shard_pairs += 1
        self.count += 1
        size = self._raw.tell() + (self._sink.pending_bytes // 3 if self.fmt == "parquet" else 0)
        if size >= self.shard_bytes:
            self._finish_shard()

    def mark_input(self, name: str, *, seen: int = 0, bad: int = 0) -> None:
        """Record that input `name` is fully read (its pairs end at the current count; it held `seen` records,
        `bad` of them malformed)."""
        self.manifest["inputs"].append({"input": str(name), "end": self.count, "seen": seen, "bad": bad})

    def _finish_shard(self) -> None:
        if self._raw is None:
            return
        self._sink.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        final = self._shard_path()
        os.replace(final.with_name(final.name + ".tmp"), final)
        self.manifest["shards"].append({"file": final.name, "pairs": self._shard_pairs,
                                        "bytes": final.stat().st_size})
        self.manifest["pairs"] = self.count
        self._raw = self._sink = None
        atomic_write_json(self.out_dir / f"{self.prefix}.manifest.json", self.manifest)

    def close(self, *, done: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Finish the open shard and write the manifest (marked complete when `done`); returns it."""
        self._finish_shard()
        if extra:
            self.manifest.update(extra)
        self.manifest["pairs"] = self.count
        self.manifest["done"] = done
        atomic_write_json(self.out_dir / f"{self.prefix}.manifest.json", self.manifest)
        self.release()
        return self.manifest

    def release(self) -> None:
        """Let another writer have this folder and prefix (done by `close`; safe to call twice)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def abort(self) -> None:
        """Drop the open shard (its pairs are re-made on resume) and keep the manifest of finished shards."""
        if self._raw is not None:
            self._raw.close()
            final = self._shard_path()
            final.with_name(final.name + ".tmp").unlink(missing_ok=True)
            self.count -= self._shard_pairs
            self._raw = self._sink = None

    def __enter__(self) -> PairWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
            self.release()


def list_shards(path: str | os.PathLike[str]) -> list[Path]:
    """Shard files under a folder (sorted), or the file itself; raises when there are none."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"no such pairs folder or file: {p}")
    files = sorted(f for f in p.iterdir() if f.is_file() and f.name.endswith(SHARD_SUFFIXES))
    if not files:
        raise E5kitError(f"{p}: no pair shards (*.jsonl.gz, *.jsonl, *.parquet) found")
    return files


def iter_shard(path: str | os.PathLike[str], bad: BadRecords | None = None) -> Iterator[Pair]:
    """Pairs of one shard file, streamed; malformed records go to `bad` (the one policy; default: stop at the
    first, naming its file and line)."""
    bad = bad or BadRecords.strict("pair records")
    parquet = str(path).endswith(".parquet")
    for obj, where in iter_records(path, bad):
        try:
            if parquet and isinstance(obj.get("meta"), str):
                obj["meta"] = json.loads(obj["meta"])
            pair = Pair.from_dict(obj, where)
        except ValueError as exc:  # InputFormatError is one
            bad.skip(where, str(exc))
            continue
        bad.ok()
        yield pair


def iter_pairs(path: str | os.PathLike[str], bad: BadRecords | None = None) -> Iterator[Pair]:
    """Every pair under a shard folder (or in one shard file), in shard order, streamed (bad: see iter_shard)."""
    for shard in list_shards(path):
        yield from iter_shard(shard, bad)


def interleave(streams: Sequence[Iterator[T]], weights: Sequence[float]) -> Iterator[T]:
    """Every item of every stream once, mixed in proportion to `weights` (deterministic).

    Stream i's k-th item is due at (k + 0.5) / weights[i]; the earliest due goes next. Folders of
    different sources written one after another would otherwise reach a trainer's shuffle buffer as
    long single-source runs.
    """
    if len(streams) != len(weights) or any(not w > 0 for w in weights):
        raise ValueError(f"need one weight > 0 per stream, got {list(weights)} for {len(streams)} streams")
    heap = [(0.5 / w, i) for i, w in enumerate(weights)]
    heapq.heapify(heap)
    counts = [0] * len(streams)
    done = object()
    while heap:
        _, i = heapq.heappop(heap)
        item = next(streams[i], done)
        if item is done:
            continue
        yield item  # type: ignore[misc]
        counts[i] += 1
        heapq.heappush(heap, ((counts[i] + 0.5) / weights[i], i))
