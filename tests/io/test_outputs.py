"""Embedding writers: each format round-trips, with ids, and nothing is left half-written."""

from __future__ import annotations

import numpy as np
import pytest

from e5kit.io.outputs import ids_path, write_embeddings


@pytest.fixture
def vectors():
    return np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)


def test_npy_with_ids_sidecar(tmp_path, vectors):
    out = write_embeddings(tmp_path / "e.npy", vectors, ["a", "b", "c", "d"])
    np.testing.assert_array_equal(np.load(out), vectors)
    assert ids_path(out).read_text().split() == ["a", "b", "c", "d"]


def test_jsonl_and_gz(tmp_path, vectors):
    for name in ("e.jsonl", "e.jsonl.gz"):
        out = write_embeddings(tmp_path / name, vectors, ["a", "b", "c", "d"])
        from e5kit.io.records import iter_jsonl

        rows = list(iter_jsonl(out))
        assert [r["id"] for r in rows] == ["a", "b", "c", "d"]
        np.testing.assert_allclose(np.array([r["embedding"] for r in rows]), vectors, atol=1e-7)


def test_parquet(tmp_path, vectors):
    import pyarrow.parquet as pq

    out = write_embeddings(tmp_path / "e.parquet", vectors, ["a", "b", "c", "d"])
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == ["a", "b", "c", "d"]
    np.testing.assert_allclose(np.array(table.column("embedding").to_pylist()), vectors)


def test_bad_output_name_and_id_count(tmp_path, vectors):
    with pytest.raises(ValueError, match="unknown format"):
        write_embeddings(tmp_path / "e.csv", vectors)
    with pytest.raises(ValueError, match="3 ids for 4 vectors"):
        write_embeddings(tmp_path / "e.npy", vectors, ["a", "b", "c"])
    assert list(tmp_path.iterdir()) == []  # nothing written, no temp files


def test_empty_matrix(tmp_path):
    out = write_embeddings(tmp_path / "e.jsonl", np.empty((0, 8), dtype=np.float32))
    assert out.read_text() == ""
