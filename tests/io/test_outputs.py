"""Embedding writers: each format round-trips, with ids, and nothing is left half-written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from e5kit.io.outputs import ids_path, write_embeddings


@pytest.fixture
def vectors():
    return np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)


def test_npy_with_ids_sidecar(tmp_path, vectors):
    out = write_embeddings(tmp_path / "e.npy", vectors, ["a", "b", "c", "d"])
    np.testing.assert_array_equal(np.load(out), vectors)
    assert [json.loads(x) for x in ids_path(out).read_text().splitlines()] == ["a", "b", "c", "d"]


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


# -- issue 13: ids that cannot split or go stale, no silent overwrite, checks before work, the umask --

def test_issue13_npy_ids_are_json_lines_and_an_id_with_a_newline_stays_one(tmp_path, vectors):
    ids = ["a\nb", "tab\there", "ünï", 'quote"d']
    out = write_embeddings(tmp_path / "e.npy", vectors, ids)
    assert ids_path(out).name == "e.ids.jsonl"
    lines = ids_path(out).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == ids


def test_issue13_rewrite_without_ids_removes_the_stale_ids_file(tmp_path, vectors):
    out = write_embeddings(tmp_path / "e.npy", vectors, ["a", "b", "c", "d"])
    legacy = tmp_path / "e.ids.txt"  # the sidecar name of earlier versions is stale as well
    legacy.write_text("a\nb\nc\nd\n")
    write_embeddings(out, vectors[:2], None, overwrite=True)
    assert not ids_path(out).exists() and not legacy.exists()
    assert np.load(out).shape == (2, 3)


def test_issue13_existing_output_or_ids_file_refused_without_overwrite(tmp_path, vectors):
    out = tmp_path / "e.npy"
    out.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite"):
        write_embeddings(out, vectors)
    assert out.read_bytes() == b"precious"
    other = tmp_path / "f.npy"
    ids_path(other).write_text('"x"\n')  # a sidecar alone also belongs to someone
    with pytest.raises(FileExistsError, match="f.ids.jsonl"):
        write_embeddings(other, vectors)
    assert not other.exists()
    write_embeddings(out, vectors, overwrite=True)
    np.testing.assert_array_equal(np.load(out), vectors)


def test_issue13_output_equal_to_input_is_refused(tmp_path, vectors):
    from e5kit.io.outputs import check_output

    src = tmp_path / "x.jsonl"
    src.write_text('{"text": "a"}\n')
    for out in (src, tmp_path / "." / "x.jsonl"):
        with pytest.raises(ValueError, match="is the input"):
            check_output(out, overwrite=True, input_path=src)
    ids_input = tmp_path / "y.ids.jsonl"  # y.npy would write its ids over the input
    ids_input.write_text('{"text": "a"}\n')
    with pytest.raises(ValueError, match="is the input"):
        check_output(tmp_path / "y.npy", overwrite=True, input_path=ids_input)
    assert src.read_text() == '{"text": "a"}\n'


@pytest.fixture
def unwritable_dir(tmp_path):
    """A folder no file can be created in: chmod 0555 for a normal user; /proc for root (who ignores modes)."""
    import os
    from pathlib import Path

    if os.geteuid() == 0:
        if not Path("/proc/self").is_dir():
            pytest.skip("root without /proc: no unwritable folder to test with")
        yield Path("/proc")
        return
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    yield d
    d.chmod(0o755)


def test_issue13_unwritable_output_refused_up_front_naming_the_output(tmp_path, vectors, unwritable_dir):
    from e5kit.io.outputs import check_output

    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    (tmp_path / "d.npy").mkdir()
    for out, msg in ((blocker / "sub" / "e.npy", "is a file, not a folder"),
                     (unwritable_dir / "e.npy", "not writable"), (tmp_path / "d.npy", "is a folder")):
        with pytest.raises(OSError, match=msg) as err:
            check_output(out, overwrite=False)
        assert str(out) in str(err.value) and ".tmp" not in str(err.value)
    with pytest.raises(OSError, match="not writable"):
        write_embeddings(unwritable_dir / "e.npy", vectors)


@pytest.mark.parametrize("name", ["e.npy", "e.jsonl", "e.jsonl.gz", "e.parquet"])
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_issue13_outputs_follow_the_umask(tmp_path, vectors, name, mask):
    import os

    old = os.umask(mask)
    try:
        out = write_embeddings(tmp_path / name, vectors, ["a", "b", "c", "d"])
    finally:
        os.umask(old)
    written = [out, ids_path(out)] if name.endswith(".npy") else [out]
    for path in written:
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path.name
