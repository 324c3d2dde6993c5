"""`e5kit pairs filter --engine ray`: the consistency filter with its encoder on Ray actors keeps the same pairs,
with the same ranks, as the in-process filter; the pool is the same (drawn from the whole input)."""

from __future__ import annotations

import json

import pytest

from e5kit.cli import main
from e5kit.data import iter_pairs
from tests.data.test_consistency import constructed_pairs, write

pytest.importorskip("ray", reason="the scale extra (ray) is not installed: pip install 'e5kit[scale]'")


def test_ray_filter_keeps_the_same_pairs_as_in_process(tmp_path, tiny_e5, local_ray):
    write(tmp_path / "raw", constructed_pairs(), shard_bytes=1024)
    args = ["pairs", "filter", str(tmp_path / "raw"), "--model", str(tiny_e5), "--pool-size", "30", "--top-k", "3",
            "--chunk-size", "16", "--no-progress"]
    assert main([*args, "-o", str(tmp_path / "inproc")]) == 0
    assert main([*args, "-o", str(tmp_path / "ray"), "--engine", "ray", "--ray-workers", "2"]) == 0
    a = {p.id: p.meta["consistency_rank"] for p in iter_pairs(tmp_path / "inproc")}
    b = {p.id: p.meta["consistency_rank"] for p in iter_pairs(tmp_path / "ray")}
    assert a == b and 0 < len(a) < 50
    pool_a = (tmp_path / "inproc" / "pool" / "texts.jsonl").read_text()
    assert pool_a == (tmp_path / "ray" / "pool" / "texts.jsonl").read_text()
    rep_a = json.loads((tmp_path / "inproc" / "report-consistency.json").read_text())
    rep_b = json.loads((tmp_path / "ray" / "report-consistency.json").read_text())
    assert rep_a["kept"] == rep_b["kept"] == len(a)
    # the same fingerprint in the settings: either run can resume the other's
    assert rep_a["settings"]["model"] == rep_b["settings"]["model"]


def test_ray_filter_with_an_address_where_nothing_listens_is_one_error(tmp_path, tiny_e5, capsys):
    write(tmp_path / "raw", constructed_pairs()[:5])
    assert main(["pairs", "filter", str(tmp_path / "raw"), "-o", str(tmp_path / "out"), "--model", str(tiny_e5),
                 "--engine", "ray", "--address", "127.0.0.1:9"]) == 1
    assert "cannot reach a Ray cluster at '127.0.0.1:9'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
