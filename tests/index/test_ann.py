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


# --- issue 13: every ANN parameter is checked, with its allowed range, before FAISS does any work ---


@pytest.fixture()
def no_faiss(monkeypatch):
    """Any FAISS call fails the test: the parameters must be refused before it."""
    import e5kit.index.ann as ann_mod

    monkeypatch.setattr(ann_mod, "_faiss", lambda: pytest.fail("FAISS was reached before the parameters were checked"))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"M": 0}, r"M=0 .*2\.\.512"),  # FAISS aborts the process (exit 134)
        ({"M": -1}, r"M=-1 .*2\.\.512"),  # FAISS grows memory until killed
        ({"M": 1}, r"M=1 .*2\.\.512"),
        ({"M": 100_000}, r"M=100000 .*2\.\.512"),
        ({"M": 8.5}, "M must be an int"),
        ({"M": True}, "M must be an int"),
        ({"ef_search": 0}, r"ef_search=0 .*1\.\."),
    ],
)
def test_i13_05_hnsw_M_out_of_range_refused_before_faiss(dense, no_faiss, params, match):
    with pytest.raises(ValueError, match=match):
        build_ann(dense, "hnsw", save=False, **params)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"nprobe": 0}, r"nprobe=0 .*1\.\."),
        ({"nlist": 0}, r"nlist=0 .*1\.\."),
        ({"nlist": 7000}, r"nlist=7000 .*1\.\.6000"),  # more lists than documents
        ({"nlist": 64, "train_size": 50}, r"nlist=64 .*1\.\.50 .*training"),
        ({"train_size": 0}, r"train_size=0 .*1\.\."),
        ({"refine": 0}, r"refine=0 .*1\.\."),
        ({"m": 0}, r"m=0 .*allowed: 1\.\."),
        ({"m": 5}, r"m=5 .*divid"),
        ({"nbits": 0}, r"nbits=0 .*1\.\.16"),
        ({"nlist": 8, "nprobe": 9}, r"nprobe=9 .*1\.\.8"),
        ({"nprobe": "4"}, "nprobe must be an int"),
    ],
)
def test_i13_07_ivfpq_params_refused_with_range_before_faiss(dense, no_faiss, params, match):
    with pytest.raises(ValueError, match=match):
        build_ann(dense, "ivfpq", save=False, **params)


def test_i13_07_search_time_params_checked(dense):
    ann = build_ann(dense, "ivfpq", nlist=16, train_size=3000, save=False)
    q = sample_queries(dense, 2)
    for bad, match in (({"nprobe": 0}, r"nprobe=0 .*1\.\.16"), ({"nprobe": 17}, r"nprobe=17 .*1\.\.16"),
                       ({"refine": 0}, r"refine=0 .*1\.\.")):
        with pytest.raises(ValueError, match=match):
            ann.search(q, 3, **bad)


@pytest.mark.parametrize("nbits", [20, 13])
def test_i13_13_ivfpq_nbits_too_large_refused_not_silently_lowered(dense, no_faiss, nbits):
    # 6000 documents train at most 2**12 centroids per sub-quantizer; 20 is also above FAISS's 16
    with pytest.raises(ValueError, match=rf"nbits={nbits} .*1\.\.(16|12)"):
        build_ann(dense, "ivfpq", save=False, nbits=nbits)


def test_i13_13_ivfpq_default_nbits_follows_the_data(dense):
    small = build_ann(dense, "ivfpq", save=False, nlist=4, train_size=200)  # 200 vectors: 2**7 centroids at most
    assert small.params["nbits"] == 7
    assert build_ann(dense, "ivfpq", save=False, nlist=4, nbits=6, train_size=200).params["nbits"] == 6


@pytest.mark.parametrize("params", [{"ef_construction": 0}, {"M": 16, "ef_construction": 8}])
def test_i13_13_hnsw_ef_construction_below_M_refused(dense, no_faiss, params):
    with pytest.raises(ValueError, match=r"ef_construction=\d+ .*(16|32)\.\."):
        build_ann(dense, "hnsw", save=False, **params)


def test_ann_index_is_not_replaced_without_overwrite(tmp_path):
    other = DenseIndex.open(index_from_vectors(tmp_path / "ix", clustered(300, 16, seed=4)))
    build_ann(other, "hnsw", M=8, ef_construction=16)
    before = (tmp_path / "ix" / "ann" / "hnsw.faiss").read_bytes()
    with pytest.raises(IndexFormatError, match="exists.*overwrite"):
        build_ann(other, "hnsw", M=16)
    assert (tmp_path / "ix" / "ann" / "hnsw.faiss").read_bytes() == before
    assert build_ann(other, "hnsw", M=16, overwrite=True).params["M"] == 16
    assert AnnIndex.load(other, "hnsw").params["M"] == 16
    assert not [p for p in (tmp_path / "ix" / "ann").iterdir() if p.name.startswith(".")]  # no temp files left


def _flip_exponent(path, row: int, col: int) -> None:
    """Flip one bit of a stored float32's exponent byte: 0.3 becomes ~1e38, as a bad disk sector might."""
    arr = np.load(path)
    header = path.stat().st_size - arr.nbytes
    data = bytearray(path.read_bytes())
    data[header + (row * arr.shape[1] + col) * 4 + 3] ^= 0x40
    path.write_bytes(bytes(data))


def test_i13_10_flipped_byte_gives_an_error_not_huge_scores(tmp_path):
    x = clustered(100, 8, seed=5)
    dense = DenseIndex.open(index_from_vectors(tmp_path / "ix", x, shard_size=40))
    col = int(np.argmax(x[45]))
    _flip_exponent(tmp_path / "ix" / "shards" / "00001.f32.npy", 5, col)  # row 45, its largest coordinate
    dense = DenseIndex.open(tmp_path / "ix")  # opening does not read the vectors
    with pytest.raises(IndexFormatError, match=r"shard 1 .*(index check|corrupt)"):
        dense.search_vectors(x[45:46], 3)
    with pytest.raises(IndexFormatError, match="checksum"):
        DenseIndex.open(tmp_path / "ix", verify=True)
