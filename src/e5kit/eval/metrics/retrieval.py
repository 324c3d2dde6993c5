"""Ranking metrics as mteb 2.x computes them: pytrec_eval for nDCG/MAP/recall/P@k, its own MRR@k.

Conventions (both pytrec_eval's and mteb's): a run is {query id: {doc id: score}}; documents are
ranked by score, ties broken by doc id in descending string order; only queries present in both
the qrels and the run are averaged; relevance > 0 counts as relevant for MAP, recall, P and MRR,
graded relevance is used as gain for nDCG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

K_VALUES: tuple[int, ...] = (1, 3, 5, 10, 20, 100, 1000)

NAMES = (("ndcg", "ndcg_cut"), ("map", "map_cut"), ("recall", "recall"), ("precision", "P"))  # ours, pytrec's

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]


def _check_k_values(k_values: Sequence[int]) -> list[int]:
    ks = list(k_values)
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"k_values must be a non-empty list of positive ints, got {k_values!r}")
    return ks


def ranked(doc_scores: Mapping[str, float]) -> list[str]:
    """Doc ids best first: score descending, ties by doc id descending (pytrec_eval's order)."""
    return [d for d, _ in sorted(doc_scores.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def mrr_at_k(qrels: Qrels, run: Run, k_values: Sequence[int]) -> dict[str, list[float]]:
    """Reciprocal rank of the first relevant document within the top k, per evaluated query."""
    ks = _check_k_values(k_values)
    out: dict[str, list[float]] = {f"mrr_at_{k}": [] for k in ks}
    for qid, doc_scores in run.items():
        if qid not in qrels:
            continue
        relevant = {d for d, rel in qrels[qid].items() if rel > 0}
        order = ranked(doc_scores)
        first = next((rank for rank, d in enumerate(order, start=1) if d in relevant), None)
        for k in ks:
            out[f"mrr_at_{k}"].append(1.0 / first if first is not None and first <= k else 0.0)
    return out


def retrieval_scores(qrels: Qrels, run: Run, k_values: Sequence[int] = K_VALUES) -> dict[str, float]:
    """Mean nDCG/MAP/recall/precision/MRR at each k over the queries judged and retrieved.

    Keys follow mteb: ndcg_at_10, map_at_100, recall_at_1000, precision_at_1, mrr_at_10, ...
    Raises ValueError when no query of the run is judged (nothing to average).
    """
    import pytrec_eval

    ks = _check_k_values(k_values)
    if not isinstance(qrels, Mapping) or not isinstance(run, Mapping):
        raise TypeError("qrels and run must be mappings {query id: {doc id: value}}")
    cut = ",".join(str(k) for k in ks)
    measures = {f"ndcg_cut.{cut}", f"map_cut.{cut}", f"recall.{cut}", f"P.{cut}"}
    clean_qrels = {str(q): {str(d): int(r) for d, r in docs.items()} for q, docs in qrels.items()}
    clean_run = {str(q): {str(d): float(s) for d, s in docs.items()} for q, docs in run.items()}
    per_query = pytrec_eval.RelevanceEvaluator(clean_qrels, measures).evaluate(clean_run)
    if not per_query:
        raise ValueError("no query of the run has relevance judgements; nothing to evaluate")
    n = len(per_query)
    scores: dict[str, float] = {}
    for k in ks:
        for ours, theirs in NAMES:
            scores[f"{ours}_at_{k}"] = sum(v[f"{theirs}_{k}"] for v in per_query.values()) / n
    evaluated = {q: clean_run[q] for q in per_query}
    for name, values in mrr_at_k(clean_qrels, evaluated, ks).items():
        scores[name] = sum(values) / len(values)
    return scores
