"""Consistency-based filtering (E5, section 3.1): embed every pair's query, rank its own passage among a pool of
random passages, and keep the pair only when its passage is within the top k (E5: k = 2 among 1 M).

Work goes input shard by input shard: each finished shard leaves its kept pairs and a manifest (with its counts)
under the output folder, so a stopped run resumes at the next shard and `part="i/n"` splits shards among
processes. The pool (a seeded reservoir sample of passages) is embedded once and cached in the output folder."""

from __future__ import annotations

import json
import logging
import os
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from e5kit.data.decontaminate import text_key
from e5kit.data.pairs import Pair
from e5kit.data.resume import differences
from e5kit.data.shards import (
    OutputSettings,
    PairWriter,
    bad_log_path,
    iter_pairs,
    iter_shard,
    list_shards,
    read_manifest,
    remove_shards,
)
from e5kit.errors import E5kitError
from e5kit.io.atomic import atomic_save_npy, atomic_write_json, atomic_write_text
from e5kit.io.bad_records import BadRecords
from e5kit.options import positive_int, with_options

log = logging.getLogger("e5kit")


class PairEncoder(Protocol):
    """What the filter needs from a model: L2-normalized embeddings of queries and of passages."""

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...

    def encode_passages(self, texts: list[str]) -> np.ndarray: ...


def sample_pool(src: str | os.PathLike[str], size: int, *, seed: int = 0,
                bad: BadRecords | None = None) -> list[str]:
    """A uniform random sample (reservoir, seeded) of up to `size` passages from the shards under `src`
    (malformed records go to `bad`; default: stop at the first)."""
    positive_int("pool_size", size)
    rng = random.Random(seed)
    pool: list[str] = []
    for i, pair in enumerate(iter_pairs(src, bad)):
        if i < size:
            pool.append(pair.passage)
        else:
            j = rng.randrange(i + 1)
            if j < size:
                pool[j] = pair.passage
    return pool


def _encode(fn: Any, texts: list[str], chunk: int, bar: Any = None) -> np.ndarray:
    out = []
    for start in range(0, len(texts), chunk):
        out.append(np.asarray(fn(texts[start:start + chunk]), dtype=np.float32))
        if bar is not None:
            bar.update(len(out[-1]))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class ConsistencyFilter:
    """Ranks each pair's own passage against a fixed pool; `keep_mask` says which pairs rank within `top_k`."""

    def __init__(self, encoder: PairEncoder, pool_texts: Sequence[str], *, top_k: int = 2,
                 pool_embeddings: np.ndarray | None = None, chunk_size: int = 8192, show_progress: bool | None = None):
        from tqdm.auto import tqdm

        positive_int("top_k", top_k)
        if not pool_texts:
            raise ValueError("the passage pool is empty")
        self.encoder, self.top_k, self.chunk_size = encoder, top_k, chunk_size
        if pool_embeddings is None:
            with tqdm(total=len(pool_texts), unit="passage", desc="embed pool", disable=show_progress is False) as bar:
                pool_embeddings = _encode(encoder.encode_passages, list(pool_texts), chunk_size, bar)
        if len(pool_embeddings) != len(pool_texts):
            raise ValueError(f"{len(pool_embeddings)} pool embeddings for {len(pool_texts)} pool passages")
        self.pool_embeddings = np.ascontiguousarray(pool_embeddings, dtype=np.float32)
        self.pool_keys = np.array([text_key(t) for t in pool_texts], dtype=np.uint64)
        self._key_order = np.argsort(self.pool_keys, kind="stable")
        self._sorted_keys = self.pool_keys[self._key_order]
        self.index = _pool_index(self.pool_embeddings)

    def ranks(self, pairs: Sequence[Pair]) -> np.ndarray:
        """For each pair, how many pool passages (other than its own text) score above its own passage,
        counted up to `top_k` (so `rank < top_k` means kept)."""
        if not pairs:
            return np.zeros(0, dtype=np.int64)
        q = _encode(self.encoder.encode_queries, [p.query for p in pairs], self.chunk_size)
        own_keys = np.array([text_key(x.passage) for x in pairs], dtype=np.uint64)
        p = self._passage_embeddings(pairs, own_keys)
        own = np.einsum("ij,ij->i", q, p)
        k = min(self.top_k + 1, len(self.pool_embeddings))
        scores, idx = self.index(np.ascontiguousarray(q), k)
        own_keys = own_keys[:, None]
        valid = idx >= 0
        same = valid & (self.pool_keys[np.where(valid, idx, 0)] == own_keys)
        above = valid & ~same & (scores > own[:, None])
        return above.sum(axis=1)

    def _passage_embeddings(self, pairs: Sequence[Pair], keys: np.ndarray) -> np.ndarray:
        """Embeddings of the pairs' own passages, reusing the pool's for passages that are in the pool."""
        pos = np.minimum(np.searchsorted(self._sorted_keys, keys), len(self._sorted_keys) - 1)
        found = self._sorted_keys[pos] == keys
        out = np.empty((len(pairs), self.pool_embeddings.shape[1]), dtype=np.float32)
        out[found] = self.pool_embeddings[self._key_order[pos[found]]]
        missing = np.flatnonzero(~found)
        if len(missing):
            out[missing] = _encode(self.encoder.encode_passages, [pairs[i].passage for i in missing],
                                   self.chunk_size)
        return out

    def keep_mask(self, pairs: Sequence[Pair]) -> np.ndarray:
        return self.ranks(pairs) < self.top_k


def _pool_index(pool: np.ndarray) -> Any:
    """search(queries, k) -> (scores, indices) over the pool: FAISS exact inner product, or e5kit's blocked exact
    top-k where faiss is not installed (same results, slower on large pools)."""
    from e5kit.index.ann import _faiss  # the one import of faiss (it quiets faiss' loader logging)
    from e5kit.index.layout import IndexFormatError

    try:
        faiss = _faiss()
    except IndexFormatError:
        from e5kit.index.exact import topk

        log.warning("faiss not installed: ranking against the pool with e5kit's exact top-k")
        return lambda queries, k: topk(queries, pool, k)
    index = faiss.IndexFlatIP(pool.shape[1])
    index.add(pool)
    return index.search


def _load_encoder(model: str | PairEncoder, device: str | None, precision: str | None,
                  max_seq_length: int | None = None) -> PairEncoder:
    if not isinstance(model, (str, os.PathLike)):
        return model
    from e5kit import E5

    m = E5(model, device=device, precision=precision, max_seq_length=max_seq_length)

    class _E5Encoder:
        fingerprint = m.fingerprint

        def encode_queries(self, texts: list[str]) -> np.ndarray:
            return m.encode_queries(texts, show_progress=False)

        def encode_passages(self, texts: list[str]) -> np.ndarray:
            return m.encode_passages(texts, show_progress=False)

    return _E5Encoder()


def _model_name(encoder: PairEncoder) -> str:
    return str(getattr(encoder, "fingerprint", type(encoder).__name__))


def _pool(out: Path, tag: dict[str, Any], max_bad_fraction: float) -> tuple[list[str], np.ndarray | None]:
    """The pool texts and, when cached by an earlier run with the same settings (`tag`), their embeddings."""
    meta_path, emb_path, txt_path = out / "pool" / "pool.json", out / "pool" / "pool.npy", out / "pool" / "texts.jsonl"
    if meta_path.exists() and emb_path.exists() and txt_path.exists():
        if json.loads(meta_path.read_text(encoding="utf-8")) == tag:
            texts = [json.loads(line) for line in txt_path.read_text(encoding="utf-8").splitlines()]
            return texts, np.load(emb_path)
    bad = BadRecords(max_bad_fraction, what="pair records of the pool source", max_logged=0)  # the main pass lists
    texts = sample_pool(tag["from"], tag["pool_size"], seed=tag["seed"], bad=bad)
    bad.finish()
    return texts, None


def _save_pool(out: Path, tag: dict[str, Any], texts: list[str], emb: np.ndarray) -> None:
    out = out / "pool"  # beside the kept shards, but not among them
    out.mkdir(exist_ok=True)
    atomic_save_npy(out / "pool.npy", emb)
    atomic_write_text(out / "texts.jsonl", "".join(json.dumps(t) + "\n" for t in texts))
    atomic_write_json(out / "pool.json", tag)


@dataclass(frozen=True)
class ConsistencySettings(OutputSettings):
    """The consistency filter's settings (plus how it writes shards): E5 kept a pair when its passage ranked in
    the top 2 among 1 M random passages, scored by a model trained on the noisy pairs."""

    pool_size: int = 1_000_000
    top_k: int = 2
    pool_from: str | None = None  # folder the random pool is drawn from (default: the input)
    chunk_size: int = 8192
    seed: int = 0
    device: str | None = None
    precision: str | None = None
    max_seq_length: int | None = None  # truncate inputs (E5 pre-trained at 128 tokens)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("pool_size", "top_k", "chunk_size"):
            value = getattr(self, name)
            positive_int(name, value)


def consistency_filter(src: str | os.PathLike[str], out: str | os.PathLike[str], *, model: str | PairEncoder,
                       settings: ConsistencySettings | None = None, **options: Any) -> dict[str, Any]:
    """Keep the pairs under `src` whose own passage ranks in the top `top_k` among a pool of `pool_size` random
    passages (from `pool_from`, default `src`) plus itself; returns and writes `report-consistency.json`.
    `settings` (or its fields as keywords) say how; see ConsistencySettings.

    A rerun into the same `out` resumes only with the same settings (source, model, pool, seed, top_k, ...);
    other settings are refused with the differences, or, with `resume=False`, start over (kept shards made with
    other settings are deleted). Malformed input records follow the one bad-record policy."""
    c = with_options(ConsistencySettings, settings, options)
    from tqdm.auto import tqdm

    from e5kit.data.build import parse_part

    part_t = parse_part(c.part)
    shards = list_shards(src)[part_t[0]::part_t[1]]
    out_dir = Path(out)
    if out_dir.resolve() == Path(src).resolve():
        raise ValueError(f"output folder must differ from the input folder {src}")
    encoder = _load_encoder(model, c.device, c.precision, c.max_seq_length)
    run = _run_settings(src, c, _model_name(encoder))
    out_dir.mkdir(parents=True, exist_ok=True)
    _refuse_or_clear_other_settings(out_dir, run, c.resume)
    tag = {"pool_size": c.pool_size, "seed": c.seed, "from": run["pool_from"], "model": run["model"]}
    texts, emb = _pool(out_dir, tag, c.max_bad_fraction)
    filt = ConsistencyFilter(encoder, texts, top_k=c.top_k, pool_embeddings=emb, chunk_size=c.chunk_size,
                             show_progress=c.show_progress)
    if emb is None:
        _save_pool(out_dir, tag, texts, filt.pool_embeddings)
    bad = BadRecords(c.max_bad_fraction, what="pair records")
    bar = tqdm(unit="pair", desc="consistency", disable=c.show_progress is False)
    for shard in shards:
        prefix = shard.name.split(".")[0] + "-kept"
        done = read_manifest(out_dir, prefix) if c.resume else None
        if done and done.get("done"):
            bad.add(**done.get("bad_records", {"seen": 0, "bad": 0}))
            continue
        _filter_shard(filt, shard, PairWriter(out_dir, fmt=c.fmt, shard_bytes=c.shard_bytes, prefix=prefix,
                                              resume=False, info={"from": str(shard), "settings": run}), bad, bar)
    bar.close()
    bad.log_path = None  # each shard's skips are listed in its own <prefix>.bad_records.log
    return _report(out_dir, run, bad.finish(), len(texts))


def _run_settings(src: str | os.PathLike[str], c: ConsistencySettings, model: str) -> dict[str, Any]:
    """What decides which pairs are kept: recorded with every kept shard, compared on every rerun."""
    return {"from": os.path.abspath(src), "model": model, "pool_size": c.pool_size,
            "pool_from": os.path.abspath(c.pool_from or src), "seed": c.seed, "top_k": c.top_k,
            "precision": c.precision, "max_seq_length": c.max_seq_length}


def _refuse_or_clear_other_settings(out_dir: Path, run: dict[str, Any], resume: bool) -> None:
    """Kept shards under `out_dir` made with other settings: refused (resume) or deleted (start over)."""
    for path in sorted(out_dir.glob("*-kept.manifest.json")):
        prefix = path.name.removesuffix(".manifest.json")
        diffs = differences((read_manifest(out_dir, prefix) or {}).get("info", {}).get("settings", {}), run)
        if not diffs:
            continue
        if resume:
            raise E5kitError(f"{out_dir} holds pairs kept with other settings ({prefix}: {'; '.join(diffs)}); "
                             "rerun with the same settings to resume, pass --no-resume (resume=False) to start "
                             "over, or use another folder")
        log.warning("--no-resume: removing %s, kept with other settings (%s)", prefix, "; ".join(diffs))
        remove_shards(out_dir, prefix)


def _filter_shard(filt: ConsistencyFilter, shard: Path, writer: PairWriter, bad: BadRecords, bar: Any) -> None:
    """Keep the consistent pairs of one input shard; its counts (per source, bad records) go to its manifest."""
    counts: dict[str, Counter] = {}
    before = bad.state()
    bad.log_path = bad_log_path(writer.out_dir, writer.prefix)
    with writer:
        batch: list[Pair] = []
        for pair in iter_shard(shard, bad):
            batch.append(pair)
            if len(batch) >= filt.chunk_size:
                _keep_batch(filt, batch, writer, counts)
                bar.update(len(batch))
                batch = []
        _keep_batch(filt, batch, writer, counts)
        bar.update(len(batch))
        bad.check()
        writer.manifest["counts"] = {s: dict(c) for s, c in counts.items()}
        writer.manifest["bad_records"] = {k: bad.state()[k] - before[k] for k in ("seen", "bad")}


def _keep_batch(filt: ConsistencyFilter, batch: list[Pair], writer: PairWriter,
                counts: dict[str, Counter]) -> None:
    if not batch:
        return
    ranks = filt.ranks(batch)
    for pair, rank in zip(batch, ranks, strict=True):
        c = counts.setdefault(pair.source, Counter())
        c["input"] += 1
        if rank < filt.top_k:
            c["kept"] += 1
            pair.meta = {**pair.meta, "consistency_rank": int(rank)}
            writer.write(pair)


def _report(out_dir: Path, run: dict[str, Any], bad_records: dict[str, Any], pool_passages: int) -> dict[str, Any]:
    """Sum the counts of every finished shard manifest of these settings in `out_dir` into
    report-consistency.json."""
    total: dict[str, Counter] = {}
    bad = Counter()
    for path in sorted(out_dir.glob("*-kept.manifest.json")):
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("done") and manifest.get("info", {}).get("settings") == run:
            for source, c in manifest.get("counts", {}).items():
                total.setdefault(source, Counter()).update(c)
            bad.update(manifest.get("bad_records", {}))
    by_source = {s: {"input": c["input"], "kept": c["kept"],
                     "kept_fraction": c["kept"] / c["input"] if c["input"] else 0.0} for s, c in sorted(total.items())}
    n_in = sum(c["input"] for c in by_source.values())
    n_kept = sum(c["kept"] for c in by_source.values())
    report = {"top_k": run["top_k"], "pool_size": pool_passages, "seed": run["seed"], "from": run["from"],
              "settings": run, "input": n_in, "kept": n_kept, "kept_fraction": n_kept / n_in if n_in else 0.0,
              "by_source": by_source, "bad_records": {"seen": bad["seen"], "bad": bad["bad"]},
              "max_bad_fraction": bad_records["max_fraction"]}
    atomic_write_json(out_dir / "report-consistency.json", report)
    return report
