import numpy as np
import pytest

from e5kit.index.build import build_index
from e5kit.index.fusion import rrf, weighted
from e5kit.index.hybrid import HybridSearcher, build_bm25
from e5kit.index.layout import IndexFormatError
from e5kit.index.store import DenseIndex

from .helpers import write_corpus


def test_rrf_by_hand():
    fused = rrf([["a", "b", "c"], ["c", "a"]], k=60)
    expect = {"a": 1 / 61 + 1 / 62, "b": 1 / 62, "c": 1 / 63 + 1 / 61}
    assert [d for d, _ in fused] == ["a", "c", "b"]
    for doc, score in fused:
        assert score == pytest.approx(expect[doc])
    weighted_rrf = rrf([["a", "b"], ["b", "a"]], k=0, weights=[1.0, 3.0])
    assert weighted_rrf[0] == ("b", pytest.approx(1 / 2 + 3 / 1))
    assert rrf([["x", "y"], ["y", "x"]], top=1) == [("x", pytest.approx(1 / 61 + 1 / 62))]  # tie: first seen


def test_weighted_minmax_by_hand():
    fused = weighted([(["a", "b", "c"], [0.9, 0.8, 0.5]), (["c", "d"], [12.0, 2.0])], weights=[0.5, 0.5])
    got = dict(fused)
    assert got["a"] == pytest.approx(0.5 * 1.0)
    assert got["b"] == pytest.approx(0.5 * 0.75)
    assert got["c"] == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)
    assert got["d"] == pytest.approx(0.0)
    assert [d for d, _ in fused][:2] == ["a", "c"]
    z = dict(weighted([(["a", "b"], [1.0, 3.0])], normalize="zscore"))
    assert z["b"] == pytest.approx(1.0) and z["a"] == pytest.approx(-1.0)
    assert dict(weighted([(["a", "b"], [2.0, 2.0])])) == {"a": 1.0, "b": 1.0}


@pytest.mark.parametrize(
    "call",
    [
        lambda: rrf([]),
        lambda: rrf("ab"),
        lambda: rrf([["a"]], k=-1),
        lambda: rrf([["a"]], weights=[1, 2]),
        lambda: rrf([["a"]], weights=[-1]),
        lambda: weighted([]),
        lambda: weighted([(["a"], [1.0, 2.0])]),
        lambda: weighted([(["a"], [float("nan")])]),
        lambda: weighted([(["a"], [1.0])], normalize="rank"),
    ],
)
def test_fusion_bad_input(call):
    with pytest.raises(ValueError):
        call()


@pytest.fixture(scope="module")
def hybrid_index(tmp_path_factory, e5_tiny):
    folder = tmp_path_factory.mktemp("hyb")
    write_corpus(folder / "corpus.jsonl", 40)
    build_index(folder / "corpus.jsonl", folder / "ix", model=e5_tiny, shard_size=16)
    dense = DenseIndex.open(folder / "ix")
    build_bm25(dense, show_progress=False)
    return dense


def test_hybrid_per_query_methods(hybrid_index, e5_tiny):
    searcher = HybridSearcher.open(hybrid_index, e5_tiny)
    queries = ["protein cell", "water fire", "dark light", "big small"]
    res = searcher.search(queries, 5, method=["dense", "bm25", "rrf", "weighted"], depth=20, show_progress=False)
    dense_hits = hybrid_index.search(e5_tiny, queries[:1], 5)[0]
    assert [h.id for h in res[0]] == [h.id for h in dense_hits]
    _, bm25_ids = searcher.bm25.search([queries[1]], 5, show_progress=False)
    assert [h.id for h in res[1]] == bm25_ids[0]
    d_s, d_r = hybrid_index.search_vectors(e5_tiny.encode_queries([queries[2]]), 20)
    _, b_ids = searcher.bm25.search([queries[2]], 20, show_progress=False)
    expect = rrf([hybrid_index.ids_of(d_r[0]), b_ids[0]], weights=[0.5, 0.5], top=5)
    assert [(h.id, pytest.approx(h.score)) for h in res[2]] == [(d, s) for d, s in expect]
    assert [h.rank for h in res[3]] == [1, 2, 3, 4, 5]
    only_bm25 = searcher.search(queries[1:2], 3, method="weighted", alpha=0.0, depth=20, show_progress=False)[0]
    assert [h.id for h in only_bm25] == bm25_ids[0][:3]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "magic"}, "not one of"),
        ({"method": ["rrf"]}, "methods for"),
        ({"alpha": 2.0}, "alpha"),
        ({"k": 0}, "k must"),
    ],
)
def test_hybrid_bad_input(hybrid_index, e5_tiny, kwargs, match):
    with pytest.raises(ValueError, match=match):
        HybridSearcher.open(hybrid_index, e5_tiny).search(["a", "b"], **{"k": 3, **kwargs})


def test_hybrid_needs_bm25_and_same_model(tmp_path, e5_tiny, bert_tiny, hybrid_index):
    build_index(write_corpus(tmp_path / "c.jsonl", 5), tmp_path / "ix", model=e5_tiny)
    with pytest.raises(IndexFormatError, match="no BM25 index"):
        HybridSearcher.open(DenseIndex.open(tmp_path / "ix"), e5_tiny)
    with pytest.raises(IndexFormatError, match="not the model"):
        HybridSearcher.open(hybrid_index, bert_tiny)
    (tmp_path / "c.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="gone"):
        build_bm25(DenseIndex.open(tmp_path / "ix"))
    assert np.isfinite(len(hybrid_index))


def test_i13_09_hybrid_query_without_known_terms_is_dense_only(hybrid_index, e5_tiny):
    searcher = HybridSearcher.open(hybrid_index, e5_tiny)
    res = searcher.search(["zzzz qqqq"] * 3, 5, method=["bm25", "rrf", "weighted"], depth=20, show_progress=False)
    assert res[0] == []  # BM25 alone: no hits, not three filler documents
    dense_ids = [h.id for h in hybrid_index.search(e5_tiny, ["zzzz qqqq"], 5)[0]]
    assert [h.id for h in res[1]] == dense_ids and [h.id for h in res[2]] == dense_ids


def test_bm25_index_is_not_replaced_without_overwrite(hybrid_index):
    meta = hybrid_index.folder / "bm25" / "e5kit_bm25.json"
    before = meta.read_text()
    with pytest.raises(IndexFormatError, match="exists.*overwrite"):
        build_bm25(hybrid_index, k1=1.2, show_progress=False)
    assert meta.read_text() == before
    with pytest.raises(ValueError, match="k1"):  # checked before the corpus is read
        build_bm25(hybrid_index, k1=-1, overwrite=True, show_progress=False)
    build_bm25(hybrid_index, k1=0.9, overwrite=True, show_progress=False)
    assert not [p for p in hybrid_index.folder.iterdir() if p.name.startswith(".")]
