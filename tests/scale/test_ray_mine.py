"""`e5kit mine --engine ray`: the candidates (the --corpus index) are encoded on Ray actors and the mined
negatives equal the in-process run's; a missing Ray or an address where nothing listens is one clear error
before any work."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from e5kit.cli import main
from e5kit.data.shards import iter_pairs
from tests.mine.conftest import write_beir

pytest.importorskip("ray", reason="the scale extra (ray) is not installed: pip install 'e5kit[scale]'")


def _beir_and_pairs(tmp_path):
    from e5kit.data.build import build_pairs

    beir = write_beir(tmp_path / "beir")
    build_pairs("beir", [beir], tmp_path / "pairs", options={"split": "train"}, show_progress=False)
    return beir, tmp_path / "pairs"


def _mined(out):
    return {p.id: (p.meta["mined"]["negative_ids"], p.negatives) for p in iter_pairs(out)}


def _vectors(folder):
    from e5kit.index.store import DenseIndex

    index = DenseIndex.open(folder, verify=True)
    rows = np.arange(len(index))
    return index.ids_of(rows), index.vectors(rows)


def test_ray_mine_gives_the_same_negatives_as_in_process(tmp_path, tiny_e5, local_ray, monkeypatch):
    from e5kit.index import build

    beir, pairs = _beir_and_pairs(tmp_path)
    args = ["mine", str(pairs), "--corpus", str(beir), "--model", str(tiny_e5), "-k", "5", "--depth", "20",
            "--no-progress"]
    assert main([*args, "--index", str(tmp_path / "ix-a"), "-o", str(tmp_path / "out-a")]) == 0

    def not_here(*_a, **_k):
        raise AssertionError("--engine ray encoded the candidates in this process")

    monkeypatch.setattr(build, "encode_in_process", not_here)  # the Ray run must not encode in the driver
    assert main([*args, "--index", str(tmp_path / "ix-b"), "-o", str(tmp_path / "out-b"), "--engine", "ray",
                 "--ray-workers", "2"]) == 0
    ids_a, vec_a = _vectors(tmp_path / "ix-a")
    ids_b, vec_b = _vectors(tmp_path / "ix-b")
    assert ids_a == ids_b and len(ids_a) == 40
    assert float(np.abs(vec_a - vec_b).max()) <= 1e-6
    a, b = _mined(tmp_path / "out-a"), _mined(tmp_path / "out-b")
    assert a == b and len(a) >= 10
    assert all(len(ids) == 5 for ids, _ in a.values())  # every pair got its 5 negatives, in the same order


def test_ray_mine_with_an_address_where_nothing_listens_is_one_error(tmp_path, tiny_e5, capsys):
    beir, pairs = _beir_and_pairs(tmp_path)
    assert main(["mine", str(pairs), "--corpus", str(beir), "--index", str(tmp_path / "ix"), "-o",
                 str(tmp_path / "out"), "--model", str(tiny_e5), "--engine", "ray", "--address", "127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach a Ray cluster at '127.0.0.1:9'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ix").exists() and not (tmp_path / "out").exists()


def test_ray_mine_without_ray_names_the_extra(tmp_path, tiny_e5, capsys, monkeypatch):
    beir, pairs = _beir_and_pairs(tmp_path)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    assert main(["mine", str(pairs), "--corpus", str(beir), "--index", str(tmp_path / "ix"), "-o",
                 str(tmp_path / "out"), "--model", str(tiny_e5), "--engine", "ray"]) == 1
    assert "pip install 'e5kit[scale]'" in capsys.readouterr().err
    assert not (tmp_path / "ix").exists() and not (tmp_path / "out").exists()


def test_ray_mine_without_corpus_is_refused(tmp_path, tiny_e5, capsys):
    assert main(["mine", str(tmp_path), "--index", str(tmp_path / "ix"), "-o", str(tmp_path / "out"),
                 "--engine", "ray"]) == 1
    assert "--engine ray encodes the candidates of --corpus" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
