"""`e5kit index build --engine ray`: the vectors equal the in-process build's (<= 1e-6), the index passes
`index check`, and a missing Ray or an address where nothing listens is one clear error before any work."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from e5kit.cli import main
from e5kit.scale.deps import EngineError

ray = pytest.importorskip("ray", reason="the scale extra (ray) is not installed: pip install 'e5kit[scale]'")


def _corpus(path, n=70):
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            words = " ".join(["the cell water", "fire earth light", "big small run"][i % 3] for _ in range(1 + i % 9))
            fh.write(json.dumps({"_id": f"d{i}", "title": f"doc {i}", "text": words}) + "\n")
    return path


def _vectors(folder):
    from e5kit.index.store import DenseIndex

    index = DenseIndex.open(folder, verify=True)
    rows = np.arange(len(index.ids_of(range(sum(m.count for m in index.metas)))))
    return index.ids_of(rows), index.vectors(rows)


def test_ray_build_equals_in_process_and_passes_index_check(tmp_path, tiny_e5, local_ray, capsys):
    corpus = _corpus(tmp_path / "corpus.jsonl")
    common = ["--model", str(tiny_e5), "--shard-size", "16", "--no-progress"]
    assert main(["index", "build", str(corpus), "-o", str(tmp_path / "inproc"), *common]) == 0
    assert main(["index", "build", str(corpus), "-o", str(tmp_path / "ray"), *common, "--engine", "ray",
                 "--ray-workers", "2"]) == 0
    ids_a, vec_a = _vectors(tmp_path / "inproc")
    ids_b, vec_b = _vectors(tmp_path / "ray")
    assert ids_a == ids_b and vec_a.shape == vec_b.shape == (70, 32)
    assert float(np.abs(vec_a - vec_b).max()) <= 1e-6
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["complete"]["shards"] == 5
    assert sorted(p.name for p in (tmp_path / "ray" / "shards").glob("*.json")) == \
        sorted(p.name for p in (tmp_path / "inproc" / "shards").glob("*.json"))
    capsys.readouterr()
    assert main(["index", "check", str(tmp_path / "ray"), "--json"]) == 0
    assert main(["index", "merge", str(tmp_path / "ray")]) == 0


def test_ray_build_resumes_and_rewrites_only_a_missing_shard(tmp_path, tiny_e5, local_ray):
    from e5kit.index.build import build_index
    from e5kit.scale.ray_index import RaySettings, ray_encoder

    corpus = _corpus(tmp_path / "corpus.jsonl", n=40)
    enc = ray_encoder(RaySettings(workers=1))
    build_index(corpus, tmp_path / "ix", model=str(tiny_e5), shard_size=16, show_progress=False, encode_groups=enc)
    _, before = _vectors(tmp_path / "ix")
    (tmp_path / "ix" / "shards" / "00001.json").unlink()
    rep = build_index(corpus, tmp_path / "ix", model=str(tiny_e5), shard_size=16, show_progress=False,
                      encode_groups=enc)
    assert (rep.encoded_shards, rep.skipped_shards, rep.complete) == (1, 2, True)
    _, after = _vectors(tmp_path / "ix")
    assert float(np.abs(before - after).max()) <= 1e-6


def test_an_address_where_nothing_listens_is_one_error_naming_it(tmp_path, tiny_e5, capsys):
    from e5kit.scale.ray_index import RaySettings, ray_encoder

    with pytest.raises(EngineError, match=r"cannot reach a Ray cluster at '127\.0\.0\.1:9'"):
        ray_encoder(RaySettings(address="127.0.0.1:9"))
    with pytest.raises(EngineError, match="not HOST:PORT"):
        ray_encoder(RaySettings(address="nonsense"))
    corpus = _corpus(tmp_path / "c.jsonl", n=3)
    assert main(["index", "build", str(corpus), "-o", str(tmp_path / "ix"), "--model", str(tiny_e5),
                 "--engine", "ray", "--address", "127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert "127.0.0.1:9" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ix").exists()


def test_pairs_clean_on_ray_executor_checks_the_address_first(tmp_path):
    pytest.importorskip("datatrove")
    from e5kit.scale.pairs import clean_pairs

    with pytest.raises(EngineError, match="127.0.0.1:9"):
        clean_pairs(tmp_path, tmp_path / "out", executor="ray", address="127.0.0.1:9")
    assert not (tmp_path / "out").exists()


def test_without_ray_one_error_names_the_extra(monkeypatch):
    from e5kit.scale.ray_index import ray_encoder

    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(EngineError, match=r"pip install 'e5kit\[scale\]'"):
        ray_encoder()


@pytest.mark.parametrize("bad", [dict(workers=0), dict(workers="2"), dict(gpus_per_worker=-1),
                                 dict(cpus_per_worker=True)])
def test_bad_ray_settings_are_refused(bad):
    from e5kit.scale.ray_index import RaySettings

    with pytest.raises(ValueError):
        RaySettings(**bad)


def test_model_spec_passes_the_budget_only_when_the_user_gave_one(tiny_e5):
    from e5kit import E5
    from e5kit.scale.ray_index import model_spec

    default = E5(tiny_e5, device="cpu")
    assert default.engine.batcher.max_tokens == 4096 and model_spec(default)["max_tokens_per_batch"] is None
    given = E5(tiny_e5, device="cpu", max_tokens_per_batch=300)
    assert model_spec(given)["max_tokens_per_batch"] == 300
