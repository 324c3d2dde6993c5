"""Hard negatives for (query, positive) pairs, mined from an e5kit index (E5's fine-tuning stage).

For each pair, the query is searched in the index (dense with the index's model, BM25, or hybrid fusion, all
through `e5kit.index.search.search`), and up to `negatives` of the retrieved documents become its
`negatives`. False negatives are guarded against in four ways:
- never a judged positive: every document that any pair (or `qrels`) marks relevant for the same query is
  left out, matched by id (`meta.doc_id`) and by normalized text;
- `skip_top`: the first ranks are left out (the likeliest unjudged positives);
- `max_score_ratio`: only candidates scoring below ratio x the positive's own score are kept (positive-aware
  mining; dense and hybrid compare cosines, BM25 its own scores);
- `sample_range` "a:b": the negatives are drawn at random (seeded by `seed` and the pair id) among ranks a..b,
  instead of taking the best-ranked survivors.
With `teacher`, a cross-encoder scores [positive, *negatives] and the scores are stored as `teacher_scores`.

Output: pair shards (data/shards.py), streamed in chunks, resumable (an interrupted run continues after its
last finished shard; only with the same settings), split with `part="i/n"` like the other data stages. Each
pair's `meta.mined` says what happened to its candidates; `mine-report[-partIofN].json` sums it up with the
histogram of kept negatives per pair.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from e5kit.data.build import parse_part, part_prefix
from e5kit.data.labeled import read_qrels
from e5kit.data.pairs import Pair, normalize_text
from e5kit.data.shards import OutputSettings, PairWriter, iter_pairs, list_shards, read_manifest
from e5kit.data.teacher import TeacherSettings
from e5kit.errors import E5kitError
from e5kit.io.atomic import atomic_write_json
from e5kit.options import positive_int, with_options

log = logging.getLogger("e5kit")
METHODS = ("dense", "bm25", "rrf", "weighted")


@dataclass(frozen=True)
class MineSettings:
    """What to mine; see the module docstring for the guards."""

    method: str = "dense"
    negatives: int = 7  # kept per pair, at most
    depth: int = 100  # documents retrieved per query (with sample_range: its end)
    skip_top: int = 0
    max_score_ratio: float | None = None
    sample_range: str | tuple[int, int] | None = None  # "a:b", 1-based ranks, both included
    seed: int = 0
    alpha: float = 0.5  # hybrid weight of dense vs BM25
    qrels: str | None = None  # more judged positives, joined by meta.query_id / doc_id
    teacher: str | None = None  # a cross-encoder (sequence-classification) checkpoint
    chunk: int = 1024  # pairs searched per call

    def validated(self) -> MineSettings:
        """Raise ValueError naming the first bad value."""
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        for name in ("negatives", "depth", "chunk"):
            value = getattr(self, name)
            positive_int(name, value)
        if not isinstance(self.skip_top, int) or self.skip_top < 0:
            raise ValueError(f"skip_top must be an int >= 0, got {self.skip_top!r}")
        if self.max_score_ratio is not None and not 0 < self.max_score_ratio <= 10:
            raise ValueError(f"max_score_ratio must be in (0, 10], e.g. 0.95, got {self.max_score_ratio!r}")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha!r}")
        self.rank_range()
        return self

    def rank_range(self) -> tuple[int, int] | None:
        """(a, b) from `sample_range`, or None."""
        r = self.sample_range
        if r is None:
            return None
        try:
            a, b = (int(x) for x in r.split(":")) if isinstance(r, str) else (int(r[0]), int(r[1]))
        except (ValueError, TypeError, IndexError) as exc:
            raise ValueError(f"sample_range must look like 'a:b' (1-based ranks, e.g. 30:200), got {r!r}") from exc
        if not 1 <= a <= b:
            raise ValueError(f"sample_range {a}:{b} needs 1 <= a <= b")
        return a, b

    @property
    def retrieve(self) -> int:
        """How many documents to retrieve per query."""
        rng = self.rank_range()
        return rng[1] if rng else self.depth


@dataclass
class MineReport:
    """Counts of one part's mining (read back from its shards, so a resumed run reports every pair)."""

    out: str
    pairs: int = 0  # all pairs of this part, those of a resumed earlier run included
    candidates: int = 0
    dropped_positive: int = 0
    dropped_top: int = 0
    dropped_ratio: int = 0
    dropped_duplicate: int = 0
    positive_unscored: int = 0  # ratio guard could not score the positive: nothing kept for that pair
    kept_histogram: dict[int, int] = field(default_factory=dict)  # negatives kept -> pairs
    seconds: float = 0.0
    resumed_from: int = 0
    complete: bool = False

    def add(self, counts: dict[str, int]) -> None:
        for key in ("candidates", "dropped_positive", "dropped_top", "dropped_ratio", "dropped_duplicate"):
            setattr(self, key, getattr(self, key) + counts[key])
        self.positive_unscored += int(counts["positive_unscored"])
        self.kept_histogram[counts["kept"]] = self.kept_histogram.get(counts["kept"], 0) + 1
        self.pairs += 1

    def summary(self) -> str:
        hist = ", ".join(f"{k}: {v}" for k, v in sorted(self.kept_histogram.items(), reverse=True))
        return (f"{self.out}: {self.pairs} pairs mined in {self.seconds:.1f}s ({self.candidates} candidates; dropped "
                f"{self.dropped_positive} judged positives, {self.dropped_top} top ranks, {self.dropped_ratio} above "
                f"the score ratio, {self.dropped_duplicate} duplicate texts; {self.positive_unscored} positives "
                f"unscored); negatives kept per pair -> pairs: {hist or 'none'}")


def _hash(text: str) -> bytes:
    return hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=12).digest()


class Judged:
    """Every judged positive of a query, by document id and by text hash (pass 1 over the input pairs)."""

    def __init__(self) -> None:
        self.ids: dict[str, set[str]] = {}
        self.hashes: dict[str, set[bytes]] = {}

    def add_pair(self, pair: Pair) -> None:
        self.hashes.setdefault(pair.query, set()).add(_hash(pair.passage))
        if pair.meta.get("doc_id") is not None:
            self.ids.setdefault(pair.query, set()).add(str(pair.meta["doc_id"]))

    def add_ids(self, query: str, ids: Sequence[str]) -> None:
        self.ids.setdefault(query, set()).update(ids)

    def is_positive(self, query: str, doc_id: str, text_hash: bytes) -> bool:
        return doc_id in self.ids.get(query, ()) or text_hash in self.hashes.get(query, ())

    @classmethod
    def collect(cls, inputs: Sequence[str | os.PathLike[str]], qrels: str | None) -> Judged:
        judged, by_qid = cls(), {}
        extra = read_qrels(qrels).positives if qrels else {}
        for pair in _input_pairs(inputs):
            judged.add_pair(pair)
            qid = pair.meta.get("query_id")
            if qid is not None and str(qid) in extra:
                by_qid[pair.query] = extra[str(qid)]
        for query, ids in by_qid.items():
            judged.add_ids(query, ids)
        return judged


def _input_pairs(inputs: Sequence[str | os.PathLike[str]]) -> Iterator[Pair]:
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    for src in inputs:
        yield from iter_pairs(src)


class GuardScorer:
    """Scores for the max_score_ratio guard: the positive's and each candidate's, comparable with each other.

    dense / hybrid: cosines of the index's model (candidates' vectors read from the index, the positive's too
    when it is in the corpus, else encoded); bm25: BM25 scores (the positive must be in the corpus)."""

    def __init__(self, dense: Any, model: Any, method: str, bm25: Any = None) -> None:
        self.dense, self.model, self.method, self.bm25 = dense, model, method, bm25
        self.rows = {doc: row for row, doc in enumerate(dense.ids_of(range(len(dense))))}

    def scores(self, queries: list[str], pairs: list[Pair], hits: list[list[Any]],
               pos_ids: list[str | None]) -> tuple[list[float | None], list[np.ndarray]]:
        """(positive score or None, candidate scores) per pair."""
        if self.method == "bm25":
            pos = [float(self.bm25.score_ids(q, [d])[0]) if d is not None else None
                   for q, d in zip(queries, pos_ids, strict=True)]
            return pos, [np.array([h.score for h in hs], dtype=np.float32) for hs in hits]
        s = self.dense.settings
        q = self.model.encode_queries(queries, normalize=s.normalize, show_progress=False)
        need = [i for i, d in enumerate(pos_ids) if d is None]  # positives outside the corpus: encoded here
        encoded = dict(zip(need, self.model.encode_passages([pairs[i].passage for i in need], normalize=s.normalize,
                                                            show_progress=False), strict=True)) if need else {}
        pos: list[float | None] = []
        cands = []
        for i, hs in enumerate(hits):
            d = pos_ids[i]
            vec = encoded[i] if d is None else self.dense.vectors(np.array([self.rows[d]]))[0]
            pos.append(float(q[i] @ vec))
            if self.method == "dense":
                cands.append(np.array([h.score for h in hs], dtype=np.float32))
            else:
                rows = np.array([self.rows[h.id] for h in hs], dtype=np.int64)
                cands.append(self.dense.vectors(rows) @ q[i] if len(rows) else np.zeros(0, dtype=np.float32))
        return pos, cands


@dataclass
class _Corpus:
    """The index's documents: id -> text, and the ids of text hashes that pairs name as positives."""

    texts: dict[str, str]
    id_of_hash: dict[bytes, str]

    @classmethod
    def read(cls, dense: Any, wanted_hashes: set[bytes]) -> _Corpus:
        texts, id_of_hash = {}, {}
        for rec in dense.corpus_records():
            texts[rec.id] = rec.text
            h = _hash(rec.text)
            if h in wanted_hashes:
                id_of_hash.setdefault(h, rec.id)
        return cls(texts, id_of_hash)

    def positive_id(self, pair: Pair) -> str | None:
        """The corpus id of the pair's positive: its meta doc_id when the corpus has it, else by text."""
        did = pair.meta.get("doc_id")
        if did is not None and str(did) in self.texts:
            return str(did)
        return self.id_of_hash.get(_hash(pair.passage))


def select(pair: Pair, hits: list[Any], cand_scores: np.ndarray | None, pos_score: float | None, *,
           judged: Judged, corpus: _Corpus, s: MineSettings) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """The (id, text) negatives kept for one pair, best rank first, and the counts of what was dropped."""
    counts = {"candidates": len(hits), "dropped_positive": 0, "dropped_top": 0, "dropped_ratio": 0,
              "dropped_duplicate": 0, "positive_unscored": 0}
    rng_range = s.rank_range()
    ratio_on = s.max_score_ratio is not None
    if ratio_on and pos_score is None:
        counts["positive_unscored"] = 1
    survivors: list[tuple[str, str]] = []
    seen: set[bytes] = set()
    for j, hit in enumerate(hits):
        text = corpus.texts[hit.id]
        h = _hash(text)
        if judged.is_positive(pair.query, hit.id, h):
            counts["dropped_positive"] += 1
        elif hit.rank <= s.skip_top:
            counts["dropped_top"] += 1
        elif rng_range and not rng_range[0] <= hit.rank <= rng_range[1]:
            continue
        elif ratio_on and (pos_score is None or not cand_scores[j] < s.max_score_ratio * pos_score):
            counts["dropped_ratio"] += 1
        elif h in seen:
            counts["dropped_duplicate"] += 1
        else:
            seen.add(h)
            survivors.append((hit.id, text))
    if rng_range and len(survivors) > s.negatives:
        rng = random.Random(f"{s.seed}/{pair.id}")
        keep = sorted(rng.sample(range(len(survivors)), s.negatives))
        survivors = [survivors[i] for i in keep]
    chosen = survivors[: s.negatives]
    counts["kept"] = len(chosen)
    return chosen, counts


def check_mine_paths(inputs: Sequence[str | os.PathLike[str]] | str, out: str | os.PathLike[str],
                     index: str | os.PathLike[str] | None = None, corpus: Sequence[str] | None = None) -> None:
    """Refuse, before any model loads, what would fail later: missing pair inputs, an output that is a file or
    cannot be written, a missing index folder when no corpus is given to build it, a missing corpus file."""
    from e5kit.index.layout import IndexLayout
    from e5kit.io.atomic import check_folder_writable

    for src in [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs:
        list_shards(src)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise E5kitError(f"output {out} is a file; name a folder for the mined pair shards")
    check_folder_writable(out, out)
    if index is not None and not corpus and not IndexLayout(index).exists():
        raise E5kitError(f"{index} holds no e5kit index (no manifest.json); build one with `e5kit index build` "
                         "or pass --corpus to build it here")
    for path in corpus or ():
        if not Path(path).exists():
            raise FileNotFoundError(f"no such corpus file or folder: {path}")


def _check_resume(out: Path, prefix: str, info: dict[str, Any], resume: bool) -> None:
    old = read_manifest(out, prefix) if resume else None
    if old is not None and old.get("info", {}).get("mine") != info["mine"]:
        raise E5kitError(f"{out} holds a mining run with other settings ({old.get('info', {}).get('mine')}); "
                         "resume only with the same settings: use another output folder, or --no-resume to "
                         "start over there")


def mine_negatives(inputs: Sequence[str | os.PathLike[str]] | str, out: str | os.PathLike[str], *, index: Any,
                   model: Any = None, settings: MineSettings | None = None, teacher: TeacherSettings | None = None,
                   output: OutputSettings | None = None, **options: Any) -> MineReport:
    """Mine negatives for the pairs under `inputs` from `index` (a folder or DenseIndex) into shards under `out`.

    `model` is the index's model (an E5; default: the one that built the index; another is refused),
    `settings` (or its fields as keywords) say how, `teacher` how the cross-encoder runs, `output` how the
    shards are written (fmt, shard_bytes, part "i/n", resume, show_progress).
    """
    from e5kit.index.search import SearchOptions, index_model, search
    from e5kit.index.store import DenseIndex

    s = with_options(MineSettings, settings, options).validated()
    o = output or OutputSettings()
    part = parse_part(o.part)
    started = time.perf_counter()
    dense = index if isinstance(index, DenseIndex) else DenseIndex.open(index)
    model = model if model is not None and not isinstance(model, str) else index_model(dense.folder, model=model)
    dense.check_model(model)  # another model than the index's is refused before any work
    bm25 = None
    if s.method != "dense":
        from e5kit.index.hybrid import HybridSearcher

        bm25 = HybridSearcher.open(dense, model).bm25  # fails now when the index has no BM25 part
    cross = _teacher(s.teacher, teacher)
    out = Path(out)
    prefix = part_prefix(part)
    info = {"mine": {**asdict(s), "index": str(dense.folder), "model": str(model.name),
                     "model_fingerprint": model.fingerprint, "teacher_settings": asdict(teacher or TeacherSettings())}}
    _check_resume(out, prefix, info, o.resume)
    judged = Judged.collect(inputs, s.qrels)
    corpus = _Corpus.read(dense, set().union(*judged.hashes.values()) if judged.hashes else set())
    guard = GuardScorer(dense, model, s.method, bm25) if s.max_score_ratio is not None else None
    writer = PairWriter(out, fmt=o.fmt, shard_bytes=o.shard_bytes, prefix=prefix, resume=o.resume, info=info)
    report = MineReport(str(out), resumed_from=writer.resume_from)
    if writer.complete:
        log.info("%s: mining already complete (%d pairs)", out, writer.count)
        report.complete = True
        return report
    opts = SearchOptions(alpha=s.alpha, show_progress=False)
    bar = _bar(o.show_progress)
    try:
        for chunk in _chunks(_my_pairs(inputs, part, writer.resume_from), s.chunk):
            queries = [p.query for p in chunk]
            hits = search(dense, queries, k=min(s.retrieve, len(dense)), method=s.method, model=model, options=opts)
            pos_ids = [corpus.positive_id(p) for p in chunk]
            pos_scores, cand_scores = (guard.scores(queries, chunk, hits, pos_ids) if guard is not None
                                       else ([None] * len(chunk), [None] * len(chunk)))
            mined = []
            for pair, hs, cs, ps, pid in zip(chunk, hits, cand_scores, pos_scores, pos_ids, strict=True):
                chosen, counts = select(pair, hs, cs, ps, judged=judged, corpus=corpus, s=s)
                report.add(counts)
                meta = {**pair.meta, "mined": {**counts, "negative_ids": [c[0] for c in chosen],
                                               **({"positive_id": pid} if pid is not None else {})}}
                mined.append(Pair(pair.query, pair.passage, pair.source, meta, [c[1] for c in chosen] or None,
                                  pair.id))
            if cross is not None:
                _add_teacher_scores(cross, mined)
            for pair in mined:
                writer.write(pair)
            if bar is not None:
                bar.update(len(chunk))
    except BaseException:
        writer.abort()
        writer.close(done=False)
        raise
    finally:
        if bar is not None:
            bar.close()
    manifest = writer.close(done=True)
    report = _report_from_shards(out, manifest, report.resumed_from)
    report.seconds = time.perf_counter() - started
    name = "mine-report.json" if part[1] == 1 else f"mine-report-part{part[0]:03d}of{part[1]:03d}.json"
    atomic_write_json(out / name, {**asdict(report), **info})
    return report


def _report_from_shards(out: Path, manifest: dict[str, Any], resumed_from: int) -> MineReport:
    """The report of every pair this part wrote (resumed runs included), from each pair's meta.mined."""
    from e5kit.data.shards import iter_shard

    report = MineReport(str(out), resumed_from=resumed_from, complete=True)
    for shard in manifest["shards"]:
        for pair in iter_shard(out / shard["file"]):
            report.add(pair.meta["mined"])
    return report


def prepare_index(folder: str | os.PathLike[str], corpus: Sequence[str] | None, model: Any, *, method: str = "dense",
                  show_progress: bool | None = None, encode_groups: Any = None) -> Any:
    """The DenseIndex at `folder`: built (or resumed, or grown) from `corpus` with `model` when a corpus is given,
    with its BM25 part added when `method` needs one; else the finished index as it is. `encode_groups` encodes
    the candidates elsewhere (`index.build.build_index`'s hook, e.g. e5kit.scale.ray_index.ray_encoder)."""
    from e5kit.index.build import BuildSettings, build_index
    from e5kit.index.hybrid import bm25_folder, build_bm25
    from e5kit.index.store import DenseIndex

    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
    if corpus:
        build_index(list(corpus), folder, model=model, settings=BuildSettings(show_progress=show_progress),
                    encode_groups=encode_groups)
    dense = DenseIndex.open(folder)
    if method != "dense" and not bm25_folder(dense).is_dir():
        if not corpus:
            raise E5kitError(f"{folder} has no BM25 index for method {method!r}; run `e5kit index bm25 {folder}` "
                             "or pass --corpus to build it")
        build_bm25(dense, show_progress=show_progress)
    return dense


def _teacher(name: str | None, settings: TeacherSettings | None) -> Any:
    if not name:
        return None
    from e5kit.data.teacher import CrossEncoderTeacher

    return CrossEncoderTeacher(name, settings)


def _add_teacher_scores(cross: Any, pairs: list[Pair]) -> None:
    """teacher_scores = the cross-encoder's scores of [passage, *negatives] for each pair."""
    queries, passages, sizes = [], [], []
    for p in pairs:
        texts = [p.passage, *(p.negatives or [])]
        queries += [p.query] * len(texts)
        passages += texts
        sizes.append(len(texts))
    scores = cross.score(queries, passages)
    start = 0
    for p, n in zip(pairs, sizes, strict=True):
        p.teacher_scores = scores[start:start + n]
        start += n


def _my_pairs(inputs: Sequence[str | os.PathLike[str]], part: tuple[int, int], skip: int) -> Iterator[Pair]:
    """This part's input pairs (pair number % n == i), after the first `skip` of them (already written)."""
    mine = 0
    for number, pair in enumerate(_input_pairs(inputs)):
        if number % part[1] != part[0]:
            continue
        if mine >= skip:
            yield pair
        mine += 1


def _chunks(items: Iterator[Pair], size: int) -> Iterator[list[Pair]]:
    chunk: list[Pair] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _bar(show: bool | None) -> Any:
    import sys

    if show is False or (show is None and not sys.stderr.isatty()):
        return None
    from tqdm.auto import tqdm

    return tqdm(desc="mine", unit="pair", dynamic_ncols=True)
