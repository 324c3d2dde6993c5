import json

import numpy as np
import pytest

from e5kit.index.ann import AnnIndex, build_ann
from e5kit.index.check import check_index, recall_at_k, sample_queries, tie_aware_recall
from e5kit.index.exact import topk
from e5kit.index.layout import IndexFormatError
from e5kit.index.store import DenseIndex

from .helpers import clustered, index_from_vectors


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    vectors = clustered(6000, 32, seed=3)
    return DenseIndex.open(
        index_from_vectors(tmp_path_factory.mktemp("ann") / "ix", vectors, shard_size=2500, quantize=("int8", "binary"))
    )


def test_flat_equals_exact(dense):
    q = sample_queries(dense, 20, seed=1)
    ann = build_ann(dense, "flat")
    s1, r1 = ann.search(q, 10)
    s2, r2 = dense.search_vectors(q, 10)
    np.testing.assert_allclose(s1, s2, atol=1e-5)
    assert recall_at_k(r1, r2) == 1.0


def test_ivfpq_and_hnsw_recall_and_saved_params(dense):
    build_ann(dense, "ivfpq", nlist=32, train_size=3000)
    build_ann(dense, "hnsw", M=16, ef_construction=80)
    rows = {r.method: r for r in check_index(dense, sample=100, k=10)}
    assert set(rows) == {"exact-float", "exact-int8", "exact-binary", "faiss-flat", "faiss-ivfpq", "faiss-hnsw"}
    assert rows["faiss-flat"].recall == 1.0
    assert rows["faiss-ivfpq"].recall >= 0.95 and rows["faiss-hnsw"].recall >= 0.95
    assert rows["exact-int8"].recall >= 0.9
    assert rows["exact-binary"].recall < rows["exact-int8"].recall  # 1 bit loses more than 8
    meta = json.loads((dense.folder / "ann" / "ivfpq.json").read_text())
    assert meta["params"]["nlist"] == 32 and meta["params"]["m"] == 4 and meta["docs"] == 6000
    loaded = AnnIndex.load(dense, "hnsw")
    assert loaded.params["M"] == 16
    # a narrower search is allowed per call and cannot beat exact
    q = sample_queries(dense, 50, seed=2)
    exact_scores, _ = dense.search_vectors(q, 10)
    _, narrow = AnnIndex.load(dense, "ivfpq").search(q, 10, nprobe=1, refine=1)
    assert 0 < tie_aware_recall(dense, q, narrow, exact_scores) <= 1


def test_recall_helpers():
    assert recall_at_k(np.array([[1, 2, -1]]), np.array([[2, 1, 3]])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        recall_at_k(np.zeros((2, 3)), np.zeros((1, 3)))


@pytest.mark.parametrize(
    "kind, params, match",
    [
        ("lsh", {}, "not one of"),
        ("hnsw", {"nlist": 3}, "do not apply to hnsw"),
        ("ivfpq", {"m": 5}, "divide"),
    ],
)
def test_bad_ann_requests(dense, kind, params, match):
    with pytest.raises(ValueError, match=match):
        build_ann(dense, kind, save=False, **params)


def test_bad_search_and_stale_index(tmp_path, dense):
    ann = build_ann(dense, "flat", save=False)
    with pytest.raises(ValueError, match="k must be"):
        ann.search(np.zeros((1, 32)), 0)
    with pytest.raises(ValueError, match="no search parameter"):
        ann.search(np.zeros((1, 32)), 3, nprobe=4)
    with pytest.raises(ValueError, match="dim"):
        ann.search(np.zeros((1, 7)), 3)
    other = DenseIndex.open(index_from_vectors(tmp_path / "other", clustered(300, 32, seed=9)))
    with pytest.raises(IndexFormatError, match="no hnsw index"):
        AnnIndex.load(other, "hnsw")
    build_ann(other, "flat")
    (other.folder / "ann" / "flat.json").write_text(
        (other.folder / "ann" / "flat.json").read_text().replace('"docs": 300', '"docs": 299')
    )
    with pytest.raises(IndexFormatError, match="stale"):
        AnnIndex.load(other, "flat")
    with pytest.raises(ValueError, match="not in this index"):
        check_index(other, methods=["hnsw"], sample=5)


def test_check_verifies_checksums(tmp_path):
    dense = DenseIndex.open(index_from_vectors(tmp_path / "ix", clustered(100, 8), shard_size=40))
    path = tmp_path / "ix" / "shards" / "00002.f32.npy"
    data = bytearray(path.read_bytes())
    data[-2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="checksum"):
        check_index(dense, sample=5)
    assert check_index(dense, sample=5, verify=False)[0].method == "exact-float"


def test_vectors_by_row_and_blocks(tmp_path):
    x = clustered(50, 8)
    dense = DenseIndex.open(index_from_vectors(tmp_path / "ix", x, shard_size=7))
    rows = np.array([[0, 49], [7, 13]])
    np.testing.assert_array_equal(dense.vectors(rows), x[rows])
    np.testing.assert_array_equal(np.concatenate(list(dense.blocks(block_size=3))), x)
    s, r = dense.search_vectors(x[:3], 4, block_size=5)
    s2, r2 = topk(x[:3], x, 4)
    np.testing.assert_array_equal(r, r2)
    assert dense.ids_of([0, 7, 49]) == ["v0", "v7", "v49"]
