"""Metrics against hand-computed cases and against pytrec_eval / mteb's own functions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from e5kit.eval.metrics.classification import classification_scores, mean_scores
from e5kit.eval.metrics.correlation import correlations, sts_scores
from e5kit.eval.metrics.pair_classification import best_accuracy, best_f1, pair_metrics, pair_scores
from e5kit.eval.metrics.retrieval import mrr_at_k, ranked, retrieval_scores


def dcg(gains: list[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


# -- retrieval ------------------------------------------------------------------------------------
def test_graded_ndcg_and_missing_relevant_doc_by_hand():
    # q1: graded judgements; d9 is relevant but never retrieved (missing from the run)
    qrels = {"q1": {"d1": 2, "d2": 1, "d9": 1, "d5": 0}}
    run = {"q1": {"d2": 0.9, "d3": 0.8, "d1": 0.7, "d5": 0.6}}
    s = retrieval_scores(qrels, run, k_values=[1, 3, 10])
    ideal = dcg([2, 1, 1])
    assert s["ndcg_at_10"] == pytest.approx(dcg([1, 0, 2, 0]) / ideal)
    assert s["ndcg_at_1"] == pytest.approx(1 / 2)  # got gain 1, ideal gain 2
    assert s["recall_at_3"] == pytest.approx(2 / 3)  # d9 missing counts in the denominator
    assert s["precision_at_3"] == pytest.approx(2 / 3)
    assert s["map_at_10"] == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert s["mrr_at_1"] == 1.0 and s["mrr_at_10"] == 1.0


def test_ties_are_broken_by_doc_id_descending_like_pytrec_eval():
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 0.5, "b": 0.5, "c": 0.5}}  # tie: order c, b, a
    assert ranked(run["q"]) == ["c", "b", "a"]
    s = retrieval_scores(qrels, run, k_values=[1, 3])
    assert s["mrr_at_3"] == pytest.approx(1 / 3)
    assert s["ndcg_at_1"] == 0.0 and s["recall_at_3"] == 1.0
    assert s["ndcg_at_3"] == pytest.approx(1 / math.log2(4))


def test_queries_averaged_are_those_judged_and_retrieved():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    run = {"q1": {"d1": 1.0}, "q3": {"d1": 1.0}}  # q2 not retrieved, q3 not judged
    s = retrieval_scores(qrels, run, k_values=[10])
    assert s["ndcg_at_10"] == 1.0 and s["mrr_at_10"] == 1.0
    with pytest.raises(ValueError, match="no query"):
        retrieval_scores({"q9": {"d": 1}}, run)


def test_random_runs_match_pytrec_eval_and_mteb():
    import pytrec_eval
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores

    rng = np.random.default_rng(7)
    docs = [f"d{i}" for i in range(60)]
    qrels = {f"q{i}": {d: int(rng.integers(0, 3)) for d in rng.choice(docs, size=5, replace=False)}
             for i in range(20)}
    run = {q: {d: float(np.round(rng.random(), 2)) for d in docs} for q in qrels}  # rounding makes ties
    ks = [1, 3, 5, 10, 20, 100, 1000]
    ours = retrieval_scores(qrels, run, ks)
    per_q = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    assert ours["ndcg_at_10"] == pytest.approx(np.mean([v["ndcg_cut_10"] for v in per_q.values()]), abs=1e-12)
    assert ours["recall_at_100"] == pytest.approx(np.mean([v["recall_100"] for v in per_q.values()]), abs=1e-12)
    theirs = calculate_retrieval_scores(run, qrels, ks)
    for k in ks:  # mteb rounds pytrec-based means to 5 decimals
        assert ours[f"ndcg_at_{k}"] == pytest.approx(theirs.ndcg[f"NDCG@{k}"], abs=1e-5)
        assert ours[f"map_at_{k}"] == pytest.approx(theirs.map[f"MAP@{k}"], abs=1e-5)
        assert ours[f"recall_at_{k}"] == pytest.approx(theirs.recall[f"Recall@{k}"], abs=1e-5)
        assert ours[f"precision_at_{k}"] == pytest.approx(theirs.precision[f"P@{k}"], abs=1e-5)
        assert ours[f"mrr_at_{k}"] == pytest.approx(theirs.mrr[f"MRR@{k}"], abs=1e-12)


@pytest.mark.parametrize("k_values", [[], [0], [1.5], [True], "10"])
def test_bad_k_values(k_values):
    with pytest.raises(ValueError, match="k_values"):
        retrieval_scores({"q": {"d": 1}}, {"q": {"d": 1.0}}, k_values=k_values)
    with pytest.raises(ValueError, match="k_values"):
        mrr_at_k({"q": {"d": 1}}, {"q": {"d": 1.0}}, k_values)


def test_bad_run_types():
    with pytest.raises(TypeError):
        retrieval_scores([("q", "d")], {"q": {"d": 1.0}})


# -- STS -----------------------------------------------------------------------------------------
def test_correlations_by_hand_and_errors():
    p, s = correlations([1, 2, 3, 4], [10, 20, 30, 100])
    assert s == pytest.approx(1.0)
    assert p == pytest.approx(np.corrcoef([1, 2, 3, 4], [10, 20, 30, 100])[0, 1])
    _, s_tie = correlations([1, 2, 3], [1, 1, 2])  # ties get average ranks
    assert s_tie == pytest.approx(np.corrcoef([1, 2, 3], [1.5, 1.5, 3])[0, 1])
    assert all(math.isnan(v) for v in correlations([1, 1], [1, 2]))  # undefined, as in mteb
    for gold, pred, match in [([1], [1], "at least 2"), ([1, 2], [1, 2, 3], "equally long"),
                              ([1, float("nan")], [1, 2], "finite")]:
        with pytest.raises(ValueError, match=match):
            correlations(gold, pred)


def test_sts_scores_use_cosine_and_negated_distances():
    e1 = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    e2 = np.array([[1.0, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    s = sts_scores([5.0, 3.0, 0.0], e1, e2)
    assert s["cosine_spearman"] == pytest.approx(1.0)
    assert s["euclidean_spearman"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one shape"):
        sts_scores([1, 2], e1, e2[:2])


# -- pair classification ---------------------------------------------------------------------------
def test_pair_metrics_by_hand():
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    labels = [1, 1, 0, 1, 0]
    acc, thr = best_accuracy(scores, labels)
    assert acc == pytest.approx(4 / 5) and thr == pytest.approx(0.75)
    f1, precision, recall, _ = best_f1(scores, labels)
    assert f1 == pytest.approx(2 * (3 / 4) * 1 / (3 / 4 + 1)) and precision == 0.75 and recall == 1.0
    m = pair_metrics(scores, labels)
    assert m["ap"] == pytest.approx((1 + 1 + 3 / 4) / 3)
    dist = pair_metrics([-x for x in scores], labels, higher_is_similar=False)
    assert dist == pytest.approx(m)


def test_threshold_never_splits_ties():
    # a tie between a positive and a negative cannot be split, whatever the row order
    assert best_accuracy([0.5, 0.5], [1, 0]) == best_accuracy([0.5, 0.5], [0, 1])


def test_pair_metrics_match_mteb():
    from functools import partial
    from types import SimpleNamespace

    from mteb.abstasks.pair_classification import AbsTaskPairClassification as Task

    helpers = SimpleNamespace(_find_best_acc_and_threshold=partial(Task._find_best_acc_and_threshold, None),
                              _find_best_f1_and_threshold=partial(Task._find_best_f1_and_threshold, None))
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(200), 2).tolist()
    labels = (rng.random(200) < 0.3).astype(int).tolist()
    for higher in (True, False):
        theirs = Task._compute_metrics_values(helpers, scores, np.array(labels), higher)
        assert pair_metrics(scores, labels, higher_is_similar=higher) == pytest.approx(theirs)


def test_pair_scores_max_over_functions_and_errors():
    rng = np.random.default_rng(0)
    e1, e2 = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    labels = [i % 2 for i in range(30)]
    s = pair_scores(e1, e2, labels)
    assert s["max_ap"] == max(s[f"{f}_ap"] for f in ("cosine", "dot", "euclidean", "manhattan"))
    with pytest.raises(ValueError, match="0 or 1"):
        pair_metrics([0.1, 0.2], [1, 2])
    with pytest.raises(ValueError, match="non-empty"):
        pair_metrics([], [])


# -- classification --------------------------------------------------------------------------------
def test_classification_scores_by_hand():
    s = classification_scores([0, 0, 1, 1], [0, 1, 1, 1])
    assert s["accuracy"] == 0.75
    assert s["f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert "ap" in s
    multi = classification_scores(["a", "b", "c"], ["a", "b", "b"])
    assert "ap" not in multi and multi["accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        classification_scores([], [])
    assert mean_scores([{"accuracy": 0.5}, {"accuracy": 1.0}]) == {"accuracy": 0.75}
    with pytest.raises(ValueError):
        mean_scores([])
