"""Retrieval over a BEIR-layout dataset, as mteb 2.x scores it.

Dense: queries get the query prompt, documents (title + " " + text) the passage prompt; exact
cosine (normalized inner product) top-1000 over corpus blocks streamed from the encoder, so the
corpus embeddings never sit in memory at once. BM25: the same top-1000 from BM25Index. With
`ignore_identical_ids`, a retrieved document whose id equals the query id is removed (ArguAna).
"""

from __future__ import annotations

from typing import Any

from e5kit.eval.datasets import RetrievalData
from e5kit.eval.metrics.retrieval import K_VALUES, retrieval_scores
from e5kit.eval.tasks.base import TaskOutput
from e5kit.index.exact import topk_blocks
from e5kit.model.prompts import passage_text

TOP_K = 1000
MAIN_SCORE = "ndcg_at_10"


def search(model: Any, data: RetrievalData, k: int = TOP_K) -> dict[str, dict[str, float]]:
    """The run {query id: {doc id: score}} of the top-k documents per query."""
    docs = [passage_text(d, i) for i, d in enumerate(data.corpus)]
    if model.kind == "lexical":
        scores, ids = model.search(data.corpus_ids, docs, data.queries, k)
        return {q: dict(zip(ids[i], map(float, scores[i]), strict=True)) for i, q in enumerate(data.query_ids)}
    queries = model.encode(data.queries, "query")
    scores, idx = topk_blocks(queries, model.iter_encode(docs, "passage"), k)
    return {q: {data.corpus_ids[j]: float(s) for s, j in zip(scores[i], idx[i], strict=True)}
            for i, q in enumerate(data.query_ids)}


def evaluate(model: Any, data: RetrievalData, *, ignore_identical_ids: bool = False, top_k: int = TOP_K,
             k_values: tuple[int, ...] = K_VALUES) -> TaskOutput:
    """nDCG/MAP/recall/precision/MRR at k_values of the top_k run; main score nDCG@10."""
    if not isinstance(data, RetrievalData):
        raise TypeError(f"retrieval needs RetrievalData, got {type(data).__name__}")
    run = search(model, data, top_k)
    if ignore_identical_ids:
        run = {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}
    return TaskOutput(MAIN_SCORE, retrieval_scores(data.qrels, run, k_values), data.counts())
