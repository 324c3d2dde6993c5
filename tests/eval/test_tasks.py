"""Task modules on a tiny model and tiny local data: policy, determinism, BM25, options, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from e5kit.eval import datasets as loaders
from e5kit.eval.models import BM25Model, DenseModel, load_eval_model, model_slug
from e5kit.eval.tasks import classification, clustering, pair_classification, retrieval, sts, task_module, task_roles
from e5kit.model.prompts import PromptPolicy

from .tiny_data import make_beir, make_labelled, make_pairs


@pytest.fixture(scope="module")
def dense(word_model):
    return DenseModel(word_model, show_progress=False)


def test_prefix_policy_per_task_type(word_model, tiny_bert):
    from e5kit import E5

    e5 = DenseModel(word_model)
    assert e5.policy("retrieval")["inputs"] == {"query": {"role": "query", "prefix": "query: "},
                                                "document": {"role": "passage", "prefix": "passage: "}}
    for task_type in ("sts", "pair_classification", "classification", "clustering"):
        inputs = e5.policy(task_type)["inputs"]
        assert all(v == {"role": "query", "prefix": "query: "} for v in inputs.values())
    plain = DenseModel(E5(tiny_bert))  # a model without prompts
    assert all(v["prefix"] == "" for v in plain.policy("retrieval")["inputs"].values())
    assert plain.policy("sts")["source"] == "none"
    for doc_name in ("document", "doc"):  # sentence-transformers' names for the passage prompt
        stored = PromptPolicy({"query": "q: ", doc_name: "d: "}, "checkpoint")
        assert stored.record(task_roles("sts"))["inputs"]["sentence"]["prefix"] == "q: "
        assert stored.record(task_roles("retrieval"))["inputs"]["document"]["prefix"] == "d: "
    with pytest.raises(ValueError, match="unknown task type"):
        task_roles("translation")
    with pytest.raises(ValueError, match="unknown task type"):
        task_module("translation")


def test_dense_encode_applies_role_prefix(dense, word_model):
    got = dense.encode(["water fire"], "passage")
    np.testing.assert_array_equal(got, word_model.encode(["passage: water fire"]))
    blocks = list(dense.iter_encode(["water", "fire", "earth"], "query"))
    np.testing.assert_allclose(np.concatenate(blocks), word_model.encode_queries(["water", "fire", "earth"]),
                               atol=1e-6)
    assert dense.stats.texts == 4


def test_retrieval_dense_and_bm25(dense, tmp_path):
    data = loaders.load_beir(make_beir(tmp_path / "b", seed=3))
    assert data.dropped_queries == 0 and "unjudged" not in data.query_ids  # unjudged query never loaded
    out = retrieval.evaluate(dense, data)
    assert out.main_score == "ndcg_at_10" and 0 <= out.main_value <= 1
    assert {"ndcg_at_1", "map_at_100", "recall_at_1000", "mrr_at_10", "precision_at_3"} <= set(out.scores)
    assert out.scores["recall_at_1000"] == 1.0  # corpus < 1000 docs: everything retrieved
    bm = retrieval.evaluate(BM25Model(show_progress=False), data)
    assert bm.main_value > 0.5  # queries are words of their relevant document
    assert out.counts == {"corpus": 40, "queries": 12, "qrels": 24, "dropped_queries": 0}


def test_ignore_identical_ids(tmp_path):
    data = loaders.load_beir(make_beir(tmp_path / "a", seed=4, identical_ids=True))
    model = BM25Model(show_progress=False)
    run = retrieval.search(model, data)
    assert all(q in docs for q, docs in run.items())  # each query finds its own copy
    kept = retrieval.evaluate(model, data)
    dropped = retrieval.evaluate(model, data, ignore_identical_ids=True)
    assert dropped.scores["mrr_at_10"] > kept.scores["mrr_at_10"]


def test_sts_and_pairs(dense, tmp_path):
    s = sts.evaluate(dense, loaders.load_pairs(make_pairs(tmp_path / "s.jsonl.gz"), target="score"))
    assert s.main_score == "cosine_spearman" and -1 <= s.main_value <= 1
    assert s.scores["spearman"] == s.scores["cosine_spearman"]
    p = pair_classification.evaluate(dense, loaders.load_pairs(make_pairs(tmp_path / "p.jsonl.gz", target="label"),
                                                                target="label"))
    assert p.main_score == "max_ap" and p.main_value == max(p.scores[f"{f}_ap"] for f in
                                                               ("cosine", "dot", "euclidean", "manhattan"))
    with pytest.raises(ValueError, match="0 or 1"):
        pair_classification.evaluate(dense, (["a", "b"], ["c", "d"], [0.0, 2.0]))
    with pytest.raises(ValueError, match="both positive and negative"):
        pair_classification.evaluate(dense, (["a", "b"], ["c", "d"], [1.0, 1.0]))
    with pytest.raises(ValueError, match="2\\+ aligned pairs"):
        sts.evaluate(dense, (["a"], ["b"], [1.0]))


def test_classification_is_deterministic_and_follows_mteb_draws(dense, tmp_path):
    train = loaders.load_labelled(make_labelled(tmp_path / "tr.jsonl.gz", n=60, seed=1))
    test = loaders.load_labelled(make_labelled(tmp_path / "te.jsonl.gz", n=30, seed=2))
    a = classification.evaluate(dense, train, test, samples_per_label=4, n_experiments=3)
    b = classification.evaluate(dense, train, test, samples_per_label=4, n_experiments=3)
    assert a.scores == b.scores and len(a.scores["scores_per_experiment"]) == 3
    assert a.scores["accuracy"] == pytest.approx(np.mean([r["accuracy"] for r in a.scores["scores_per_experiment"]]))
    draws = classification.undersample(train[1], 4, 3, 42)
    assert all(len(d) == 12 for d in draws) and draws[0] != draws[1]
    assert a.counts["train_used"] == len(set().union(*draws))
    c = classification.evaluate(dense, train, test, samples_per_label=4, n_experiments=3, seed=7)
    assert c.scores["scores_per_experiment"] != a.scores["scores_per_experiment"] or c.counts["seed"] == 7
    for bad in ({"samples_per_label": 0}, {"n_experiments": 1.5}, {"max_iter": True}):
        with pytest.raises(ValueError):
            classification.evaluate(dense, train, test, **bad)
    with pytest.raises(ValueError, match="2\\+ labels"):
        classification.evaluate(dense, (["a", "b"], [1, 1]), test)


def test_clustering_is_deterministic(dense, tmp_path):
    data = loaders.load_labelled(make_labelled(tmp_path / "c.jsonl.gz", n=45))
    a = clustering.evaluate(dense, data, n_seeds=3)
    b = clustering.evaluate(dense, data, n_seeds=3)
    assert a.scores == b.scores and a.scores["seeds"] == [42, 43, 44]
    assert a.scores["v_measure"] == pytest.approx(np.mean(a.scores["v_measures"]))
    assert a.scores["v_measure_std"] == pytest.approx(np.std(a.scores["v_measures"]))
    with pytest.raises(ValueError, match="n_seeds"):
        clustering.evaluate(dense, data, n_seeds=0)
    with pytest.raises(ValueError, match="2\\+ labels"):
        clustering.evaluate(dense, (["a", "b"], [0, 0]))


def test_bm25_cannot_do_embedding_tasks():
    bm25 = BM25Model()
    with pytest.raises(ValueError, match="can only do retrieval"):
        sts.evaluate(bm25, (["a", "b"], ["c", "d"], [1.0, 2.0]))


def test_retrieval_rejects_wrong_data(dense):
    with pytest.raises(TypeError, match="RetrievalData"):
        retrieval.evaluate(dense, {"corpus": []})


def test_model_loading_and_slugs(word_e5, tmp_path):
    assert isinstance(load_eval_model("BM25"), BM25Model)
    assert model_slug("bm25") == "bm25" and model_slug("intfloat/e5-base") == "intfloat__e5-base"
    assert model_slug(str(word_e5)) == "e5-small-unsupervised"
    generic = tmp_path / "run7" / "model"
    generic.mkdir(parents=True)
    assert model_slug(str(generic)) == "run7__model"
    for bad in ("", None, 3):
        with pytest.raises(ValueError):
            load_eval_model(bad)
