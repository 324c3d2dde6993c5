"""Build an index: stream a corpus, encode it shard by shard, write shards atomically, resume, append, split.

Shard j holds a fixed range of corpus positions, so a shard's embeddings depend only on its own texts:
a rerun after a crash skips finished shards (their content hash is checked against the corpus) and
ends identical to an uninterrupted build. Running again over a grown corpus keeps the finished index
as its base and encodes only the documents after it. `shard=(i, n)` (or torchrun's RANK/WORLD_SIZE)
encodes only shards j with j % n == i, so n processes fill one folder; `merge_index` then checks
completeness (every shard, contiguous ranges, checksums, unique ids) and marks the index complete
(index/merge.py).
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from e5kit.errors import InputFormatError
from e5kit.index.corpus import CorpusFields, iter_corpus, records_digest, resolve_corpus
from e5kit.index.layout import (
    DEFAULT_SHARD_SIZE,
    DTYPES,
    FORMAT,
    QUANTIZED,
    IndexFormatError,
    IndexIncompleteError,
    IndexLayout,
    IndexSettings,
    ShardMeta,
    read_json,
)
from e5kit.index.merge import merge_index
from e5kit.io.atomic import atomic_write_json, check_folder_writable
from e5kit.io.records import TextRecord
from e5kit.options import positive_int, with_options

log = logging.getLogger("e5kit")
YIELD_EVERY = 32  # records parsed by the reader thread between voluntary GIL hand-offs


@dataclass
class BuildSettings:
    """How to build; None takes the existing index's value (else the defaults: float32, no quantized copies,
    16384 documents per shard, normalized, BEIR fields). A value that differs from an existing index's is an error."""

    shard: Any = None  # "i/n", (i, n), or None: torchrun's RANK/WORLD_SIZE, else all
    shard_size: int | None = None
    dtype: str | None = None
    quantize: Sequence[str] | None = None
    normalize: bool | None = None
    fields: CorpusFields | None = None
    skip_empty: bool | None = None
    precision: str | None = None  # for a model loaded by name
    max_seq_length: int | None = None  # for a model loaded by name
    show_progress: bool | None = None
    merge: bool = True  # finalize the index when this worker's slice completes it


@dataclass
class BuildReport:
    """What a build call did."""

    folder: Path
    docs: int = 0  # documents in the corpus
    shards: int = 0  # shards in the corpus layout
    encoded_docs: int = 0  # documents encoded by this call
    encoded_shards: int = 0
    skipped_shards: int = 0  # finished before (resume) or in the base (append)
    skipped_empty: list[str] = field(default_factory=list)
    encode_seconds: float = 0.0
    seconds: float = 0.0
    complete: bool = False

    @property
    def docs_per_second(self) -> float:
        return self.encoded_docs / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (f"{self.folder}: {self.docs} documents in {self.shards} shards; encoded {self.encoded_docs} "
                f"documents ({self.encoded_shards} shards, {self.docs_per_second:.1f} docs/s), kept "
                f"{self.skipped_shards} shards; {'complete' if self.complete else 'not merged yet'}")


def parse_shard_spec(spec: str | tuple[int, int] | None) -> tuple[int, int]:
    """(i, n) from "i/n", a tuple, or torchrun's RANK/WORLD_SIZE environment; (0, 1) when none."""
    if spec is None:
        rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
        if rank is None or world is None:
            return 0, 1
        spec = (int(rank), int(world))
    if isinstance(spec, str):
        try:
            i_s, n_s = spec.split("/")
            spec = (int(i_s), int(n_s))
        except ValueError as exc:
            raise ValueError(f"shard spec {spec!r} is not of the form i/n, e.g. 0/4") from exc
    i, n = spec
    if not (isinstance(i, int) and isinstance(n, int) and n >= 1 and 0 <= i < n):
        raise ValueError(f"shard spec {i}/{n} must have 0 <= i < n")
    return i, n


def _layout_settings(existing: IndexSettings | None, b: BuildSettings) -> dict[str, Any]:
    """The settings that do not come from the model, checked (before any model loads); None takes the
    existing index's value, else the default."""
    def pick(value: Any, name: str, default: Any) -> Any:
        if value is not None:
            return value
        return getattr(existing, name) if existing is not None else default

    dtype = pick(b.dtype, "dtype", "float32")
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if b.quantize is not None and (isinstance(b.quantize, str) or not isinstance(b.quantize, Sequence)):
        raise ValueError(f"quantize must be a list of {', '.join(QUANTIZED)}, got {b.quantize!r}")
    quant = tuple(sorted(set(pick(None if b.quantize is None else tuple(b.quantize), "quantize", ()))))
    for q in quant:
        if q not in QUANTIZED:
            raise ValueError(f"quantization {q!r} is not one of {', '.join(QUANTIZED)}")
    size = pick(b.shard_size, "shard_size", DEFAULT_SHARD_SIZE)
    positive_int("shard_size", size)
    norm = bool(pick(b.normalize, "normalize", True))
    if "int8" in quant and not norm:
        raise ValueError("int8 quantization assumes unit vectors; do not combine it with normalize=False")
    flds = b.fields.as_dict() if b.fields is not None else (
        dict(existing.fields) if existing else CorpusFields().as_dict())
    return {"normalize": norm, "dtype": dtype, "quantize": quant, "shard_size": size, "fields": flds,
            "skip_empty": bool(pick(b.skip_empty, "skip_empty", False))}


def _index_settings(model: Any, layout_settings: dict[str, Any]) -> IndexSettings:
    return IndexSettings(
        model=str(model.name),
        model_fingerprint=model.fingerprint,
        revision=model.revision,
        prompts=dict(model.prompts),
        passage_prefix=model.policy.prefix_for("passage"),
        query_prefix=model.policy.prefix_for("query"),
        precision=model.precision,
        dim=int(model.dim),
        max_seq_length=int(model.max_seq_length),
        **layout_settings,
    )


def check_output(layout: IndexLayout) -> None:
    """Refuse, before any work, an output e5kit cannot or must not write: a file, a folder that cannot be
    made or written, or a non-empty folder that holds no index (never written into without asking)."""
    folder = layout.folder
    if folder.exists() or folder.is_symlink():
        if not folder.is_dir():
            raise IndexFormatError(f"{folder} is not a folder (a file is there); choose another output folder")
        if not layout.exists() and any(folder.iterdir()):
            raise IndexFormatError(f"{folder} is not empty and holds no e5kit index (no manifest.json); choose an "
                                   "empty or new folder: e5kit does not write into other files' folders")
    try:
        check_folder_writable(folder, folder)
    except OSError as exc:
        raise IndexFormatError(f"{exc}; choose another output folder for the index") from None


def check_slices(layout: IndexLayout, worker: tuple[int, int]) -> None:
    """Refuse, before encoding, to add a slice of a split into n workers beside reports of another split:
    merge could never finish. The message names the files to delete when the other run was a mistake."""
    i, n = worker
    if not layout.slice_dir.is_dir():
        return
    others: dict[int, list[Path]] = {}
    for path in sorted(layout.slice_dir.glob("*-of-*.json")):
        split = read_json(path, "slice report").get("slice", [None, None])[1]
        if split != n:
            others.setdefault(split, []).append(path)
    if others:
        m, paths = next(iter(others.items()))
        specs = ", ".join(f"{p.name.split('-')[0]}/{m}" for p in paths)
        raise IndexFormatError(
            f"{layout.folder} holds {len(paths)} report(s) of a build split into {m} workers (--shard "
            f"{specs}), this run is --shard {i}/{n}; every "
            f"worker of one build must use the same N. If the earlier run was a mistake, delete "
            f"{', '.join(str(p) for p in paths)} (slices/{paths[0].name}; the shards it wrote are reused) and "
            f"rerun; else run this worker as --shard I/{m}")


@dataclass
class _Group:
    """The records of one shard of the corpus layout."""

    index: int
    start: int
    records: list[TextRecord]


class _Plan:
    """Where each corpus position goes: the base's shards first (as recorded), then fixed-size new shards."""

    def __init__(self, base_metas: list[ShardMeta], shard_size: int) -> None:
        self.base = base_metas
        self.base_starts = [m.start for m in base_metas]
        self.base_docs = sum(m.count for m in base_metas)
        self.size = shard_size

    def shard_of(self, pos: int) -> tuple[int, int, int]:
        """(shard index, shard start, shard capacity) of a corpus position."""
        if pos < self.base_docs:
            j = bisect.bisect_right(self.base_starts, pos) - 1
            return j, self.base[j].start, self.base[j].count
        j = (pos - self.base_docs) // self.size
        return len(self.base) + j, self.base_docs + j * self.size, self.size

    def groups(self, records: Iterator[TextRecord]) -> Iterator[_Group]:
        group: _Group | None = None
        cap = 0
        for pos, rec in enumerate(records):
            if pos % YIELD_EVERY == 0:
                time.sleep(0)  # hand the GIL to the encoding thread often: it waits on each batch's sync
            if group is None:
                j, start, cap = self.shard_of(pos)
                group = _Group(j, start, [])
            group.records.append(rec)
            if len(group.records) == cap:
                yield group
                group = None
        if group is not None:
            if group.index < len(self.base):
                raise IndexFormatError(
                    f"the corpus ends inside shard {group.index} of the finished index "
                    f"(has {group.start + len(group.records)} documents, the index "
                    f"{self.base_docs}); documents were removed: build a new index"
                )
            yield group


def _prefetch(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Run a generator in a thread, `depth` items ahead, so reading overlaps encoding."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    thread = threading.Thread(target=work, daemon=True, name="e5kit-index-reader")
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def rank_device() -> str | None:
    """cuda:LOCAL_RANK under torchrun on a GPU machine (one GPU per rank); else None (the default device)."""
    local = os.environ.get("LOCAL_RANK")
    if local is None:
        return None
    import torch

    return f"cuda:{int(local)}" if torch.cuda.is_available() else None


def _load_model(model: Any, existing: IndexSettings | None, precision: str | None, max_seq_length: int | None):
    from e5kit.embedder import E5
    from e5kit.model.checkpoint import DEFAULT_MODEL

    if isinstance(model, E5):
        return model
    if callable(model):  # a loader: the model loads only after every check passed (the CLI passes one)
        return model()
    name = model or (existing.model if existing else DEFAULT_MODEL)
    return E5(
        name,
        device=rank_device(),
        precision=precision or (existing.precision if existing else None),
        max_seq_length=max_seq_length or (existing.max_seq_length if existing else None),
    )


def _base_metas(layout: IndexLayout, manifest: dict[str, Any] | None) -> tuple[list[ShardMeta], set[int]]:
    """The finished index's shards, and which of them are missing (deleted after `index check` found them
    corrupt): a missing shard's place comes from the manifest (or, in an index made before it recorded
    them, from its neighbours) and the build rewrites it."""
    complete = (manifest or {}).get("complete")
    if not complete:
        return [], set()
    count = int(complete["shards"])
    metas: list[ShardMeta | None] = [layout.read_shard_meta(j) for j in range(count)]
    missing = {j for j, m in enumerate(metas) if m is None}
    sizes, hashes = complete.get("shard_counts"), complete.get("shard_sha256") or [""] * count
    if missing and sizes is None:  # an older manifest: one missing shard between known neighbours is fixed
        if any(j + 1 in missing for j in missing):
            raise IndexFormatError(
                f"{layout.folder}: shards {sorted(missing)} are missing, and neighbouring missing shards of an "
                "index made by an older e5kit cannot be placed; build a new index")
        sizes = [
            m.count if m is not None
            else (metas[j + 1].start if j + 1 < count else int(complete["docs"]))  # type: ignore[union-attr]
            - (metas[j - 1].start + metas[j - 1].count if j else 0)  # type: ignore[union-attr]
            for j, m in enumerate(metas)
        ]
    out, start = [], 0
    for j, m in enumerate(metas):
        out.append(m if m is not None else ShardMeta(j, start, int(sizes[j]), "", hashes[j], {}))
        start = out[-1].start + out[-1].count
    if missing:
        log.warning("shards %s of the finished index are missing; rewriting them", sorted(missing))
    return out, missing


EncodeGroups = Callable[[Iterator[_Group], Any, bool], Iterator[tuple[_Group, np.ndarray]]]


def encode_shard(model: Any, texts: Sequence[str], normalize: bool) -> np.ndarray:
    """The passage vectors of one shard's texts, by `model` (an E5) with its own batching and precision: the
    one way a shard is encoded, in this process or in a Ray actor."""
    parts = list(model.iter_encode(list(texts), prompt_name="passage", normalize=normalize, show_progress=False,
                                   chunk_size=max(len(texts), 1)))
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def encode_in_process(groups: Iterator[_Group], model: Any, normalize: bool) -> Iterator[tuple[_Group, np.ndarray]]:
    """(group, its passage vectors) for each group, encoded here one shard at a time."""
    for group in groups:
        yield group, encode_shard(model, [r.text for r in group.records], normalize)


class _Build:
    """One build call's state: the plan of shards, which of them this worker encodes, and the report."""

    def __init__(self, layout: IndexLayout, manifest: dict[str, Any], settings: IndexSettings,
                 files: list[Path], worker: tuple[int, int]) -> None:
        self.layout, self.manifest, self.settings, self.files = layout, manifest, settings, files
        self.i, self.n = worker
        base, self.missing = _base_metas(layout, manifest)
        self.plan = _Plan(base, settings.shard_size)
        self.report = BuildReport(layout.folder)
        self.shard_hashes: list[str] = []
        self.claimed = False

    def todo(self) -> Iterator[_Group]:
        """Groups this worker must encode; checks the base and finished shards on the way."""
        report, plan = self.report, self.plan
        records = iter_corpus(self.files, fields=CorpusFields(**self.settings.fields),
                              skip_empty=self.settings.skip_empty, skipped=report.skipped_empty)
        for group in plan.groups(records):
            digest = records_digest(group.records)
            self.shard_hashes.append(digest)
            report.docs += len(group.records)
            report.shards += 1
            base = plan.base[group.index] if group.index < len(plan.base) else None
            if base is not None and base.content_sha256 not in ("", digest):
                raise IndexFormatError(
                    f"the corpus differs from the finished index in shard {group.index} "
                    f"(documents {group.start}..{group.start + len(group.records) - 1}); "
                    "documents were edited or reordered: build a new index")
            if base is not None and group.index not in self.missing:
                report.skipped_shards += 1
            elif group.index % self.n == self.i:
                if self._finished(group, digest):
                    report.skipped_shards += 1
                else:
                    yield group
        if report.shards < len(plan.base):
            raise IndexFormatError(f"the corpus has {report.docs} documents, fewer than the finished index's "
                                   f"{plan.base_docs}; documents were removed: build a new index")
        if report.docs == 0:
            raise InputFormatError(f"the corpus {', '.join(map(str, self.files))} has no documents")
        complete = self.manifest.get("complete")
        if self.missing and complete and hashlib.sha256("".join(self.shard_hashes[:len(plan.base)]).encode()
                                                        ).hexdigest() != complete["corpus_fingerprint"]:
            raise IndexFormatError("the corpus differs from the finished index (its fingerprint changed); "
                                   "documents were edited or reordered: build a new index")

    def claim(self) -> None:
        """Make the folder and write the manifest, just before this build's first file: a build that fails
        earlier leaves nothing behind. A manifest another worker wrote meanwhile must have our settings."""
        if self.claimed:
            return
        if self.layout.exists():
            theirs = IndexSettings.from_json(self.layout.read_manifest()["settings"])
            if theirs.key() != self.settings.key():
                raise IndexFormatError(f"{self.layout.folder} was started meanwhile with other settings: "
                                       + "; ".join(theirs.differences(self.settings)))
        self.layout.write_manifest(self.manifest)
        self.claimed = True

    def _finished(self, group: _Group, digest: str) -> bool:
        meta = self.layout.read_shard_meta(group.index)
        if meta is None:
            return False
        self.layout.verify_shard(meta, self.settings, checksums=False)
        if meta.content_sha256 == digest and meta.start == group.start:
            return True
        log.warning("shard %d was made from other documents; re-encoding it", group.index)
        return False

    def encode(self, model: Any, show_progress: bool | None, encode_groups: EncodeGroups | None = None) -> None:
        """Encode this worker's groups (in this process, or by `encode_groups`, e.g. on Ray); a writer thread
        writes shard j while shard j+1 is encoded."""
        bar, pending = _bar(show_progress), None
        encoded = (encode_groups or encode_in_process)(_prefetch(self.todo()), model, self.settings.normalize)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="e5kit-index-writer") as writer:
            t0 = time.perf_counter()
            for group, vectors in encoded:
                texts = group.records
                if vectors.shape != (len(texts), self.settings.dim):
                    raise RuntimeError(f"encoder returned {vectors.shape} for {len(texts)} texts")  # never mix rows
                self.report.encode_seconds += time.perf_counter() - t0
                if pending is not None:
                    pending.result()
                self.claim()
                pending = writer.submit(self.layout.write_shard, group.index, group.start,
                                        [r.id for r in group.records], vectors, self.settings,
                                        self.shard_hashes[group.index])
                self.report.encoded_docs += len(texts)
                self.report.encoded_shards += 1
                if bar is not None:
                    bar.update(len(texts))
                t0 = time.perf_counter()
            if pending is not None:
                pending.result()
        if bar is not None:
            bar.close()

    def write_slice_report(self) -> None:
        self.claim()
        self.layout.slice_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.layout.slice_dir / f"{self.i}-of-{self.n}.json", {
            "slice": [self.i, self.n], "docs": self.report.docs, "shards": self.report.shards,
            "shard_sha256": self.shard_hashes, "base_shards": len(self.plan.base), "sources": self.manifest["sources"],
        })

    def merge(self) -> None:
        try:
            merge_index(self.layout.folder, checksums=False)
            self.report.complete = True
        except IndexIncompleteError as exc:
            if self.n == 1:
                raise
            log.info("slice %d/%d done; the index is not complete yet (%s). Run `e5kit index merge %s` when "
                     "every slice has finished.", self.i, self.n, exc, self.layout.folder)


def build_index(corpus: Any, folder: str | os.PathLike[str], *, model: Any = None,
                settings: BuildSettings | None = None, encode_groups: EncodeGroups | None = None,
                **options: Any) -> BuildReport:
    """Encode `corpus` (files, or a BEIR folder) into the index at `folder`; resumes and appends by itself.

    `model` is an E5, a model name, or a no-argument loader called after all checks (default: the index's
    model, else the E5 default). `settings` (or its fields as keyword `options`, e.g. shard_size=16) say how;
    see BuildSettings. `encode_groups` encodes the shards elsewhere (e5kit.scale.ray_index: Ray Data); the
    layout, resume and merge stay the same.
    """
    b = with_options(BuildSettings, settings, options)
    started = time.perf_counter()
    layout = IndexLayout(folder)
    check_output(layout)  # everything that can be refused is refused before the model loads
    manifest = layout.read_manifest() if layout.exists() else None
    existing = IndexSettings.from_json(manifest["settings"]) if manifest else None
    worker = parse_shard_spec(b.shard)
    chosen = _layout_settings(existing, b)
    check_slices(layout, worker)
    files = resolve_corpus(corpus)
    m = _load_model(model, existing, b.precision, b.max_seq_length)
    settings_now = _index_settings(m, chosen)
    if existing is not None and existing.key() != settings_now.key():
        raise IndexFormatError(f"{layout.folder} was built with other settings; never mixing embeddings: "
                               + "; ".join(existing.differences(settings_now)))
    manifest = manifest or {"format": FORMAT, "settings": settings_now.to_json(), "complete": None}
    manifest["sources"] = [str(p.resolve()) for p in files]
    build = _Build(layout, manifest, settings_now, files, worker)  # writes nothing until its first shard
    build.encode(m, b.show_progress, encode_groups)
    if build.report.skipped_empty:
        log.warning("left out %d records with empty text (first: %s)", len(build.report.skipped_empty),
                    build.report.skipped_empty[0])
    build.write_slice_report()
    build.report.seconds = time.perf_counter() - started
    if b.merge:
        build.merge()
    return build.report


def _bar(show: bool | None):
    import sys

    if show is False or (show is None and not sys.stderr.isatty()):
        return None
    from tqdm.auto import tqdm

    return tqdm(desc="index", unit="doc", dynamic_ncols=True, leave=False)
