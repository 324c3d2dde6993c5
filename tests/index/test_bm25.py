"""BM25Index: Lucene BM25 scores checked by hand, ranking, ties, save/load, and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from e5kit.index.bm25 import BM25Index

IDS = ["d1", "d2", "d3", "d4"]
TEXTS = ["the cat sat on the mat", "dogs chase cats", "a bird sang", "cat cat cat"]


@pytest.fixture(scope="module")
def index() -> BM25Index:
    return BM25Index.build(IDS, TEXTS, show_progress=False)


def lucene_bm25(tf: int, df: int, n: int, dl: int, avgdl: float, k1: float = 0.9, b: float = 0.4) -> float:
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return idf * tf / (tf + k1 * (1 - b + b * dl / avgdl))


def test_scores_match_hand_computed_lucene_formula(index):
    # After stopwords ("the", "on", "a") and Porter stemming: d1 = cat sat mat (3), d2 = dog chase cat (3),
    # d3 = bird sang (2), d4 = cat cat cat (3); avgdl = 11/4; "cat" occurs in d1, d2, d4 (df 3).
    scores, ids = index.search(["cat"], k=4, show_progress=False)
    avgdl = 11 / 4
    expected = {"d4": lucene_bm25(3, 3, 4, 3, avgdl), "d1": lucene_bm25(1, 3, 4, 3, avgdl),
                "d2": lucene_bm25(1, 3, 4, 3, avgdl)}
    assert ids[0] == ["d4", "d1", "d2"]  # equal scores: the earlier document first; d3 has no "cat": no hit
    for doc, score in zip(ids[0], scores[0], strict=True):
        assert score == pytest.approx(expected[doc], rel=1e-5)
    assert len(scores) == 1 and scores[0].dtype == np.float32 and scores[0].shape == (3,)


def test_stemming_lowercase_and_multi_term(index):
    _, ids = index.search(["Dogs CHASING", "birds singing"], k=1, show_progress=False)
    assert ids == [["d2"], ["d3"]]


def test_k_larger_than_corpus_and_unknown_or_empty_queries(index):
    scores, ids = index.search(["zebra quantum", "", "cat bird"], k=10, show_progress=False)
    assert ids[:2] == [[], []] and [len(s) for s in scores[:2]] == [0, 0]  # no known term: no hits
    assert sorted(ids[2]) == ["d1", "d2", "d3", "d4"]  # k above the corpus size: every matching document
    assert index.search([], k=3) == ([], [])


def test_save_load_round_trip(index, tmp_path):
    index.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert len(loaded) == 4 and loaded.params == index.params
    q = ["cat", "bird", "dogs chase"]
    a, ai = index.search(q, k=3, show_progress=False)
    b, bi = loaded.search(q, k=3, show_progress=False)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert ai == bi


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no e5kit BM25 index"):
        BM25Index.load(tmp_path)
    (tmp_path / "e5kit_bm25.json").write_text('{"format": "other", "version": 9}')
    with pytest.raises(ValueError, match="unsupported BM25 index format"):
        BM25Index.load(tmp_path)


@pytest.mark.parametrize(("ids", "texts", "kwargs", "error", "match"), [
    ([], [], {}, ValueError, "empty corpus"),
    (["a", "b"], ["x"], {}, ValueError, "differ in length"),
    (["a", "a"], ["x", "y"], {}, ValueError, "unique"),
    ("ab", ["x", "y"], {}, TypeError, "sequence of str"),
    (["a", 2], ["x", "y"], {}, TypeError, r"ids\[1\]"),
    (["a"], [None], {}, TypeError, r"texts\[0\]"),
    (["a"], ["x"], {"k1": -1}, ValueError, "k1"),
    (["a"], ["x"], {"b": 1.5}, ValueError, "b must be"),
    (["a"], ["x"], {"k1": float("nan")}, ValueError, "k1"),
    (["a"], ["x"], {"stemmer": "klingon"}, ValueError, "unknown stemmer"),
])
def test_build_rejects_bad_input(ids, texts, kwargs, error, match):
    with pytest.raises(error, match=match):
        BM25Index.build(ids, texts, show_progress=False, **kwargs)


@pytest.mark.parametrize(("queries", "k", "error"), [
    (["cat"], 0, ValueError), (["cat"], 2.5, ValueError), (["cat"], True, ValueError),
    ("cat", 2, TypeError), ([b"cat"], 2, TypeError),
])
def test_search_rejects_bad_input(index, queries, k, error):
    with pytest.raises(error):
        index.search(queries, k)


def test_large_corpus_top_k_is_exact():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(50)]
    texts = [" ".join(rng.choice(words, size=8)) for _ in range(3000)]
    ids = [str(i) for i in range(3000)]
    ix = BM25Index.build(ids, texts, show_progress=False)
    scores, got = ix.search(["w1 w2 w3"], k=25, show_progress=False)
    full, all_ids = ix.search(["w1 w2 w3"], k=3000, show_progress=False)
    assert got[0] == all_ids[0][:25]
    assert np.all(np.diff(full[0]) <= 0)


# --- issue 13 item 9: a query with no known term has no hits; the empty term is never indexed ---

POSSESSIVE = ["Alzheimer's disease in women", "the cat's toy", "s", "dogs run fast", "a an the of"]


def test_i13_09_query_without_known_terms_has_no_hits():
    ix = BM25Index.build([f"d{i}" for i in range(len(POSSESSIVE))], POSSESSIVE, show_progress=False)
    scores, ids = ix.search(["zzzz qqqq", "", "the of and", "s", "it's"], k=3, show_progress=False)
    assert ids == [[], [], [], [], []]
    assert [len(s) for s in scores] == [0, 0, 0, 0, 0]
    scores, ids = ix.search(["cat", "women's zzzz"], k=5, show_progress=False)
    assert ids == [["d1"], ["d0"]]  # only documents holding a query term, never a score-0 filler
    assert all(s.dtype == np.float32 and np.all(s > 0) for s in scores)


def test_i13_09_bm25_on_real_text_answers_only_matching_documents(shared_data):
    import gzip
    import json
    import re

    from e5kit.model.prompts import passage_text

    with gzip.open(shared_data / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        docs = [json.loads(line) for _, line in zip(range(2000), fh, strict=False)]
    texts = [passage_text(d, i) for i, d in enumerate(docs)]
    assert sum("'s " in t for t in texts) > 50  # possessives: "s" stems to the empty string
    ix = BM25Index.build([d["_id"] for d in docs], texts, show_progress=False)
    scores, ids = ix.search(["zzzz qqqq", "", "the of and", "s"], k=10, show_progress=False)
    assert ids == [[], [], [], []]
    scores, ids = ix.search(["microglia", "zzzz microglia"], k=1000, show_progress=False)
    having = [d for d, t in zip(ix.ids, texts, strict=True) if re.search(r"\bmicroglia\b", t.lower())]
    assert sorted(ids[0]) == sorted(having) and ids[1] == ids[0] and 0 < len(having) < 1000
    assert np.all(scores[0] > 0) and np.all(np.diff(scores[0]) <= 0)


def test_i13_09_eval_bm25_model_gets_no_hits_for_unknown_terms():
    from e5kit.eval.models import BM25Model

    scores, ids = BM25Model(show_progress=False).search(["d0", "d1"], ["cat's toy", "dogs"], ["zzzz", "dog"], 10)
    assert ids == [[], ["d1"]] and len(scores[0]) == 0


def test_i13_09_index_saved_before_the_fix_is_refused(index, tmp_path):
    index.save(tmp_path / "bm25")
    meta_path = tmp_path / "bm25" / "e5kit_bm25.json"
    meta_path.write_text(meta_path.read_text().replace('"version": 2', '"version": 1'))
    with pytest.raises(ValueError, match="rebuild"):
        BM25Index.load(tmp_path / "bm25")
