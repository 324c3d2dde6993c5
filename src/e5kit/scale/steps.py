"""The datatrove steps of e5kit's pair pipeline (see e5kit.scale.pairs for the stages they make). This module
imports datatrove at load: e5kit.scale.pairs imports it only after checking that datatrove is installed."""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.word_tokenizers import WordTokenizer

from e5kit.data.build import iter_source_pairs, part_prefix, splits_by_file
from e5kit.data.filters import FilterReport, RuleConfig, enabled_steps, make_check, one_blas_thread, pair_key
from e5kit.data.pairs import Pair, normalize_text
from e5kit.data.shards import OutputSettings, PairWriter, iter_shard
from e5kit.io.atomic import atomic_path, atomic_write_json
from e5kit.io.bad_records import BadRecords


def split_files(n_files: int, tasks: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) blocks of the input files, one per task, as even as counts allow: task r's pairs
    all come before task r+1's in the input order (so which duplicate is kept never depends on the split)."""
    return [(r * n_files // tasks, (r + 1) * n_files // tasks) for r in range(tasks)]


class Tally:
    """One task's counts, shared by the steps of its pipeline (reader, filters, dedup, writer) and written by
    the last one. Reset at the start of every task: a process may run several tasks one after another."""

    def __init__(self, examples: int = 3) -> None:
        self.examples = examples
        self.report: FilterReport | None = None
        self.bad: dict[str, Any] | None = None
        self.decontamination: dict[str, Any] | None = None

    def reset(self) -> None:
        self.report, self.bad, self.decontamination = FilterReport(), None, None

    def to_json(self) -> dict[str, Any]:
        assert self.report is not None
        return {"counts": self.report.raw(), "bad_records": self.bad, "decontamination": self.decontamination}


def _doc(pair: Pair) -> Document:
    return Document(text=pair.passage, id=pair.id, metadata={"pair": pair.to_dict()})


def _pair(doc: Any) -> Pair:
    return Pair.from_dict(doc.metadata["pair"])


class PairShardReader(PipelineStep):
    """Reads e5kit pair shards: task r reads its contiguous block of `files`."""

    name = "e5kit pair shards"
    type = "📖 - READER"
    what = "pair records"  # what the bad-record policy counts

    def __init__(self, files: Sequence[str], tally: Tally, bad_dir: str, max_bad_fraction: float) -> None:
        super().__init__()
        self.files, self.tally, self.bad_dir, self.max_bad_fraction = list(files), tally, bad_dir, max_bad_fraction

    def block(self, rank: int, world_size: int) -> list[str]:
        """The input files of task `rank`."""
        lo, hi = split_files(len(self.files), world_size)[rank]
        return self.files[lo:hi]

    def pairs(self, files: list[str], bad: BadRecords) -> Iterator[Pair]:
        """The pairs of `files`, in order."""
        for path in files:
            yield from iter_shard(path, bad)

    def run(self, data: Any = None, rank: int = 0, world_size: int = 1) -> Iterator[Any]:
        self.tally.reset()
        log_path = Path(self.bad_dir) / f"{rank:05d}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.unlink(missing_ok=True)
        bad = BadRecords(self.max_bad_fraction, log_path, what=self.what)
        report = self.tally.report
        for pair in self.pairs(self.block(rank, world_size), bad):
            report.input += 1
            report.by_source[pair.source]["input"] += 1
            self.stat_update("pairs")
            yield _doc(pair)
        self.tally.bad = bad.finish()


class PairBuilderReader(PairShardReader):
    """Runs one of e5kit's pair builders (`e5kit pairs build SOURCE`) as a datatrove reader: task r builds the
    pairs of its contiguous block of the builder's input files (all files in task 0 for a builder that reads
    several together), so build -> rules -> dedup -> write is one pipeline and no raw shards are written."""

    name = "e5kit pair builder"
    what = "input records"

    def __init__(self, source: str, files: Sequence[str], options: dict[str, Any], tally: Tally, bad_dir: str,
                 max_bad_fraction: float) -> None:
        super().__init__(files, tally, bad_dir, max_bad_fraction)
        self.source, self.options = source, dict(options)
        self.name = f"e5kit pair builder: {source}"

    def block(self, rank: int, world_size: int) -> list[str]:
        if splits_by_file(self.source):
            return super().block(rank, world_size)
        return self.files if rank == 0 else []

    def pairs(self, files: list[str], bad: BadRecords) -> Iterator[Pair]:
        yield from iter_source_pairs(self.source, [Path(f) for f in files], self.options, bad)


class CheckFilter(BaseFilter):
    """One of e5kit's rule checks (length, decontaminate, language) as a datatrove filter; each drop is
    counted by reason and source in the task's tally (and in datatrove's stats as dropped_REASON)."""

    type = "🔻 - FILTER"

    def __init__(self, step: str, cfg: RuleConfig, tally: Tally) -> None:
        self.name = f"e5kit {step}"
        super().__init__()
        self.step, self.cfg, self.tally = step, cfg, tally
        self._check: Any = None

    def filter(self, doc: Any) -> bool | tuple[bool, str]:
        if self._check is None:
            self._check = make_check(self.step, self.cfg)  # made in the task's process: nothing to pickle
        pair = _pair(doc)
        reason = self._check(pair)
        if reason is None:
            return True
        self.tally.report.record(pair, self.step, reason, self.cfg.examples_per_reason)
        return False, reason

    def run(self, data: Any, rank: int = 0, world_size: int = 1) -> Iterator[Any]:
        with one_blas_thread():
            yield from super().run(data, rank, world_size)
        if self._check is not None and hasattr(self._check, "summary"):
            self.tally.decontamination = self._check.summary()


class KeepFiltered(PipelineStep):
    """Keeps the pairs that passed the rule checks in one file per task, for the dedup stage to read back in
    the same order (MinHash and exact results name pairs by their position in the task)."""

    name = "e5kit filtered pairs"
    type = "💽 - WRITER"

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder

    def run(self, data: Any, rank: int = 0, world_size: int = 1) -> Iterator[Any]:
        path = Path(self.folder) / f"{rank:05d}.jsonl.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8", compresslevel=3) as fh:
            for doc in data:
                fh.write(json.dumps(doc.metadata["pair"], ensure_ascii=False) + "\n")
                yield doc


class ExactKeys(PipelineStep):
    """Writes each pair's exact-duplicate key (normalised query and passage) with its position in the task."""

    name = "e5kit exact keys"
    type = "🫂 - DEDUP"

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder

    def run(self, data: Any, rank: int = 0, world_size: int = 1) -> Iterator[Any]:
        import numpy as np

        keys: list[int] = []
        for doc in data:
            keys.append(pair_key(_pair(doc)))
            yield doc
        path = Path(self.folder) / f"{rank:05d}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.asarray(keys, dtype=np.uint64))


class ExactFind(PipelineStep):
    """One task over every task's keys: each pair whose key an earlier pair (in input order: task, then
    position) has is listed for removal, per task."""

    name = "e5kit exact duplicates"
    type = "🫂 - DEDUP"

    def __init__(self, keys_folder: str, out_folder: str, tasks: int) -> None:
        super().__init__()
        self.keys_folder, self.out_folder, self.tasks = keys_folder, out_folder, tasks

    def run(self, data: Any = None, rank: int = 0, world_size: int = 1) -> None:
        import numpy as np

        keys = [np.load(Path(self.keys_folder) / f"{r:05d}.npy") for r in range(self.tasks)]
        key = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
        task = np.concatenate([np.full(len(k), r, np.uint32) for r, k in enumerate(keys)]) if keys else key
        pos = np.concatenate([np.arange(len(k), dtype=np.uint32) for k in keys]) if keys else key
        order = np.lexsort((pos, task, key))  # by key, then input order: the first of each key is kept
        dup = np.zeros(len(key), bool)
        dup[order[1:]] = key[order[1:]] == key[order[:-1]]
        out = Path(self.out_folder)
        out.mkdir(parents=True, exist_ok=True)
        for r in range(self.tasks):
            with atomic_path(out / f"{r:05d}.npy") as tmp, open(tmp, "wb") as fh:
                np.save(fh, np.sort(pos[(task == r) & dup]))
            self.stat_update("exact_duplicates", value=int(((task == r) & dup).sum()))


class TaskPairsReader(PipelineStep):
    """Reads back task r's filtered pairs (stage 1's file for the same rank)."""

    name = "e5kit filtered pairs"
    type = "📖 - READER"

    def __init__(self, folder: str, tally: Tally) -> None:
        super().__init__()
        self.folder, self.tally = folder, tally

    def run(self, data: Any = None, rank: int = 0, world_size: int = 1) -> Iterator[Any]:
        self.tally.reset()
        for pair in iter_shard(Path(self.folder) / f"{rank:05d}.jsonl.gz"):
            yield _doc(pair)


class DedupFilter(PipelineStep):
    """Drops task r's exact duplicates (e5kit's global list) and near duplicates (datatrove's MinHash
    clusters: `RANK.remove` files of positions), each counted under its own reason."""

    name = "e5kit dedup"
    type = "🔻 - FILTER"

    def __init__(self, exact_folder: str | None, minhash_folder: str | None, tally: Tally, examples: int) -> None:
        super().__init__()
        self.exact_folder, self.minhash_folder, self.tally, self.examples = (exact_folder, minhash_folder, tally,
                                                                             examples)

    def _positions(self, rank: int) -> tuple[set[int], set[int]]:
        import numpy as np

        exact: set[int] = set()
        near: set[int] = set()
        if self.exact_folder:
            exact = set(np.load(Path(self.exact_folder) / f"{rank:05d}.npy").tolist())
        if self.minhash_folder and (path := Path(self.minhash_folder) / f"{rank:06d}.remove").exists():
            raw = path.read_bytes()
            near = {v for (v,) in struct.iter_unpack("<I", raw)}
        return exact, near

    def run(self, data: Any, rank: int = 0, world_size: int = 1) -> Iterator[Any]:
        exact, near = self._positions(rank)
        for pos, doc in enumerate(data):
            step = "exact_dedup" if pos in exact else "near_dedup" if pos in near else None
            if step is None:
                yield doc
                continue
            reason = "exact_duplicate" if step == "exact_dedup" else "near_duplicate"
            self.tally.report.record(_pair(doc), step, reason, self.examples)
            self.stat_update(f"dropped_{reason}")


class PairShardWriter(PipelineStep):
    """Writes the kept pairs as e5kit pair shards with a manifest (what `e5kit train` and every later stage
    read): prefix `pairs` for one task, `pairs-partRRRofNNN` for task r of N."""

    name = "e5kit pair shards"
    type = "💽 - WRITER"

    def __init__(self, out: str, output: OutputSettings, tally: Tally, info: dict[str, Any]) -> None:
        super().__init__()
        self.out, self.output, self.tally, self.info = out, output, tally, info

    def run(self, data: Any, rank: int = 0, world_size: int = 1) -> Iterator[Any]:
        o = self.output
        with PairWriter(self.out, fmt=o.fmt, shard_bytes=o.shard_bytes, prefix=part_prefix((rank, world_size)),
                        resume=False, info=self.info) as writer:
            for doc in data:
                pair = _pair(doc)
                writer.write(pair)
                self.tally.report.record(pair, "", None)
                yield doc


class TaskReport(PipelineStep):
    """Writes the task's tally (JSON) when its pipeline has run to the end."""

    name = "e5kit task report"
    type = "📊 - STATS"

    def __init__(self, folder: str, tally: Tally) -> None:
        super().__init__()
        self.folder, self.tally = folder, tally

    def run(self, data: Any, rank: int = 0, world_size: int = 1) -> None:
        for _ in data or ():
            pass
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(self.folder) / f"{rank:05d}.json", self.tally.to_json())


class MergeReports(PipelineStep):
    """One task: every task's tallies of both stages become `report-rules.json` in e5kit's report format."""

    name = "e5kit report"
    type = "📊 - STATS"

    def __init__(self, work: str, out: str, tasks: int, cfg: RuleConfig, extra: dict[str, Any]) -> None:
        super().__init__()
        self.work, self.out, self.tasks, self.cfg, self.extra = work, out, tasks, cfg, extra

    def run(self, data: Any = None, rank: int = 0, world_size: int = 1) -> None:
        total = FilterReport()
        seen = bad = 0
        decon = None
        for stage in ("rules", "dedup"):
            for r in range(self.tasks):
                part = json.loads((Path(self.work) / "reports" / stage / f"{r:05d}.json").read_text("utf-8"))
                total.add(part["counts"], self.cfg.examples_per_reason)
                seen += (part["bad_records"] or {}).get("seen", 0)
                bad += (part["bad_records"] or {}).get("bad", 0)
                decon = decon or part["decontamination"]
        result = total.to_dict(enabled_steps(self.cfg))
        result["bad_records"] = {"seen": seen, "bad": bad, "log": str(Path(self.work) / "bad")}
        result["config"] = asdict(self.cfg)
        if decon is not None:
            result["decontamination"] = decon
        result["engine"] = self.extra
        atomic_write_json(Path(self.out) / "report-rules.json", result)


class E5kitWords(WordTokenizer):
    """Words of e5kit's normalised text (NFKC, casefolded, punctuation collapsed): MinHash shingles match the
    in-process near-dedup's, and no NLTK model is needed."""

    def __init__(self) -> None:
        super().__init__("e5kit")

    def word_tokenize(self, text: str) -> list[str]:
        return normalize_text(text).split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]


