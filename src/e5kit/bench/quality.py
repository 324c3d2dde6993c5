"""Quality of an encoding mode, scored by e5kit.eval's own tasks (no second implementation of a metric).

SciFact nDCG@10 (BEIR retrieval, pytrec_eval) and STS Benchmark Spearman, each with the model's own
prompt policy, plus the least cosine between this mode's document vectors and the reference mode's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from e5kit.encode.precision import QUALITY_BUDGET as BUDGET
from e5kit.eval.models import DenseModel
from e5kit.eval.registry import get_dataset
from e5kit.eval.tasks import task_module


class _KeepingDocuments(DenseModel):
    """A DenseModel that keeps the document vectors it made, for the cosine to the reference mode."""

    def __init__(self, model: Any) -> None:
        super().__init__(model, show_progress=False)
        self.documents: list[np.ndarray] = []

    def iter_encode(self, texts: Sequence[str], role: str) -> Iterator[np.ndarray]:
        for block in super().iter_encode(texts, role):
            if role == "passage":
                self.documents.append(block)
            yield block


def sub_corpus(data: Any, max_docs: int | None, seed: int = 0) -> Any:
    """Every judged document plus a seeded sample of the rest, `max_docs` in all (None: the whole corpus).

    Scores are higher than on the full corpus, but deltas between modes stay a paired comparison.
    """
    if max_docs is None or max_docs >= len(data.corpus_ids):
        return data
    judged = {d for rel in data.qrels.values() for d in rel}
    rest = [i for i, d in enumerate(data.corpus_ids) if d not in judged]
    keep = set(np.random.default_rng(seed).choice(rest, size=max(0, max_docs - len(judged)), replace=False).tolist())
    rows = [i for i, d in enumerate(data.corpus_ids) if d in judged or i in keep]
    return dataclasses.replace(data, corpus_ids=[data.corpus_ids[i] for i in rows],
                               corpus=[data.corpus[i] for i in rows])


def mode_quality(model: Any, data_dir: Path, *, max_docs: int | None = None) -> tuple[dict[str, float], np.ndarray]:
    """({"scifact_ndcg10", "stsb_spearman"}, document vectors) for one loaded E5."""
    scifact, stsb = get_dataset("scifact", data_dir), get_dataset("stsbenchmark", data_dir)
    keeper = _KeepingDocuments(model)
    data = sub_corpus(scifact.load()["data"], max_docs)
    retrieval = task_module("retrieval").evaluate(keeper, data, **scifact.options)
    sts = task_module("sts").evaluate(DenseModel(model, show_progress=False), **stsb.load(), **stsb.options)
    scores = {"scifact_ndcg10": float(retrieval.main_value), "stsb_spearman": float(sts.main_value)}
    return scores, np.concatenate(keeper.documents)


def quality_table(load: Callable[[str], Any], modes: Sequence[str], data_dir: Path, *,
                  max_docs: int | None = None, log: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Per mode: SciFact nDCG@10, STSB Spearman, their deltas to the first mode, min cosine, inside budget."""
    import time

    out: dict[str, dict[str, float]] = {}
    reference: np.ndarray | None = None
    for mode in modes:
        start = time.perf_counter()
        scores, docs = mode_quality(load(mode), data_dir, max_docs=max_docs)
        reference = docs if reference is None else reference
        out[mode] = {**scores, "min_cosine_to_fp32": float((docs * reference).sum(axis=1).min())}
        log(f"  quality {mode:<5} nDCG@10 {scores['scifact_ndcg10']:.4f}  STSB {scores['stsb_spearman']:.4f}  "
            f"({time.perf_counter() - start:.0f} s)")
    base = out[modes[0]]
    for row in out.values():
        row["d_ndcg10"] = row["scifact_ndcg10"] - base["scifact_ndcg10"]
        row["d_spearman"] = row["stsb_spearman"] - base["stsb_spearman"]
        row["within_budget"] = float(abs(row["d_ndcg10"]) <= BUDGET["d_ndcg10"]
                                     and abs(row["d_spearman"]) <= BUDGET["d_spearman"]
                                     and row["min_cosine_to_fp32"] >= BUDGET["min_cosine_to_fp32"])
    return out
