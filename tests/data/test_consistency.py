"""Consistency filter on constructed pairs where the right answer is known, plus resume and a real tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from e5kit.data import Pair, PairWriter, iter_pairs
from e5kit.data.consistency import ConsistencyFilter, consistency_filter, sample_pool

TOPICS = ("fire", "water", "earth", "light", "food")


class TopicEncoder:
    """Embeds a text as the one-hot vector of the topic word it contains: queries match passages of their topic."""

    def __init__(self) -> None:
        self.calls = 0

    def _embed(self, texts):
        self.calls += 1
        out = np.full((len(texts), len(TOPICS) + 1), 0.0, dtype=np.float32)
        for i, t in enumerate(texts):
            hits = [j for j, w in enumerate(TOPICS) if w in t]
            out[i, hits[0] if hits else len(TOPICS)] = 1.0
        return out

    encode_queries = encode_passages = _embed


def constructed_pairs():
    """40 consistent pairs (query and passage share a topic) and 10 inconsistent ones (they do not)."""
    good = [Pair(f"question {i} about {TOPICS[i % 5]}", f"passage {i} on {TOPICS[i % 5]}", "good")
            for i in range(40)]
    bad = [Pair(f"question {i} about {TOPICS[i % 5]}", f"passage {i} on {TOPICS[(i + 1) % 5]}", "bad")
           for i in range(10)]
    return good + bad


def write(folder, pairs, shard_bytes=1024):
    with PairWriter(folder, shard_bytes=shard_bytes) as w:
        for p in pairs:
            w.write(p)


def test_keeps_exactly_the_consistent_pairs():
    pairs = constructed_pairs()
    f = ConsistencyFilter(TopicEncoder(), [p.passage for p in pairs], top_k=2, chunk_size=7, show_progress=False)
    assert f.keep_mask(pairs).tolist() == [True] * 40 + [False] * 10
    assert f.keep_mask([]).tolist() == []


def test_own_passage_in_pool_does_not_count_against_it():
    enc = TopicEncoder()
    pair = Pair("about water", "fire passage", "s")  # inconsistent: scores 0 against its own passage
    f = ConsistencyFilter(enc, ["fire passage", "earth passage"], top_k=1, show_progress=False)
    assert f.ranks([pair]).tolist() == [0]  # the only pool item scoring higher... is its own text
    f2 = ConsistencyFilter(enc, ["water one", "water two", "fire passage"], top_k=2, show_progress=False)
    assert f2.ranks([pair]).tolist() == [2]


def test_bad_arguments():
    with pytest.raises(ValueError, match="top_k"):
        ConsistencyFilter(TopicEncoder(), ["x"], top_k=0)
    with pytest.raises(ValueError, match="empty"):
        ConsistencyFilter(TopicEncoder(), [], top_k=1)
    with pytest.raises(ValueError, match="pool embeddings"):
        ConsistencyFilter(TopicEncoder(), ["a", "b"], pool_embeddings=np.zeros((3, 6), np.float32))
    with pytest.raises(ValueError, match="pool_size"):
        sample_pool("x", 0)


def test_sample_pool_is_seeded_and_bounded(tmp_path):
    write(tmp_path / "raw", constructed_pairs())
    a = sample_pool(tmp_path / "raw", 10, seed=3)
    assert a == sample_pool(tmp_path / "raw", 10, seed=3) and len(a) == len(set(a)) == 10
    assert a != sample_pool(tmp_path / "raw", 10, seed=4)
    assert len(sample_pool(tmp_path / "raw", 1000)) == 50


def test_filter_run_reports_per_source_and_resumes(tmp_path):
    write(tmp_path / "raw", constructed_pairs())
    enc = TopicEncoder()
    rep = consistency_filter(tmp_path / "raw", tmp_path / "out", model=enc, pool_size=100, top_k=2,
                             chunk_size=16, show_progress=False)
    assert rep["by_source"]["good"] == {"input": 40, "kept": 40, "kept_fraction": 1.0}
    assert rep["by_source"]["bad"]["kept"] == 0 and rep["kept"] == 40
    kept = list(iter_pairs(tmp_path / "out"))
    assert len(kept) == 40 and all(p.meta["consistency_rank"] < 2 for p in kept)
    assert json.loads((tmp_path / "out" / "report-consistency.json").read_text())["kept"] == 40
    enc.calls = 0
    again = consistency_filter(tmp_path / "raw", tmp_path / "out", model=enc, pool_size=100, top_k=2,
                               show_progress=False)
    assert enc.calls == 0 and again["kept"] == 40  # pool cached, every shard already done
    with pytest.raises(ValueError, match="must differ"):
        consistency_filter(tmp_path / "raw", tmp_path / "raw", model=enc, pool_size=5)


def test_parts_split_shards(tmp_path):
    write(tmp_path / "raw", constructed_pairs(), shard_bytes=1024)
    for i in range(2):
        consistency_filter(tmp_path / "raw", tmp_path / "out", model=TopicEncoder(), pool_size=100, top_k=2,
                           part=f"{i}/2", show_progress=False)
    rep = json.loads((tmp_path / "out" / "report-consistency.json").read_text())
    assert rep["input"] == 50 and rep["kept"] == 40


def test_with_a_real_tiny_model_from_the_cli(tmp_path, tiny_e5):
    from e5kit.cli import main

    write(tmp_path / "raw", constructed_pairs())
    args = ["pairs", "filter", str(tmp_path / "raw"), "-o", str(tmp_path / "all"), "--model", str(tiny_e5),
            "--pool-size", "20", "--no-progress"]
    assert main([*args, "--top-k", "21"]) == 0  # k above the pool size: every pair is kept
    assert len(list(iter_pairs(tmp_path / "all"))) == 50
    args[4] = str(tmp_path / "k1")
    assert main([*args, "--top-k", "1"]) == 0
    rep = json.loads((tmp_path / "k1" / "report-consistency.json").read_text())
    assert rep["input"] == 50 and 0 <= rep["kept"] <= 50
    assert main([*args, "--top-k", "0"]) == 1


def test_pool_passages_are_not_embedded_twice():
    pairs = constructed_pairs()
    enc = TopicEncoder()
    pool = [p.passage for p in pairs[:25]]
    f = ConsistencyFilter(enc, pool, top_k=2, show_progress=False)
    seen = []
    enc.encode_passages = lambda texts: (seen.extend(texts), TopicEncoder._embed(enc, texts))[1]
    assert f.keep_mask(pairs).tolist() == [True] * 40 + [False] * 10
    assert seen == [p.passage for p in pairs[25:]]  # only passages outside the pool were embedded


def test_same_answer_without_faiss(monkeypatch):
    import builtins

    pairs = constructed_pairs()
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("no faiss")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    f = ConsistencyFilter(TopicEncoder(), [p.passage for p in pairs], top_k=2, show_progress=False)
    assert f.keep_mask(pairs).tolist() == [True] * 40 + [False] * 10


class OtherEncoder(TopicEncoder):
    fingerprint = "another-model"


def test_rerun_with_other_settings_is_refused_not_resumed(tmp_path):
    """Issue 13 item 8: a rerun with another model or top-k silently 'resumed' under the new settings' name."""
    from e5kit.errors import E5kitError

    write(tmp_path / "raw", constructed_pairs())
    run = dict(pool_size=100, chunk_size=16, show_progress=False)
    assert consistency_filter(tmp_path / "raw", tmp_path / "out", model=TopicEncoder(), top_k=2, **run)["kept"] == 40
    with pytest.raises(E5kitError, match=r"top_k: 2 != 1.*--no-resume"):
        consistency_filter(tmp_path / "raw", tmp_path / "out", model=TopicEncoder(), top_k=1, **run)
    with pytest.raises(E5kitError, match=r"model: 'TopicEncoder' != 'another-model'"):
        consistency_filter(tmp_path / "raw", tmp_path / "out", model=OtherEncoder(), top_k=2, **run)
    enc = OtherEncoder()
    rep = consistency_filter(tmp_path / "raw", tmp_path / "out", model=enc, top_k=1, resume=False, **run)
    assert enc.calls > 0 and rep["top_k"] == 1 and rep["input"] == 50  # everything redone with the new settings
    infos = [json.loads(p.read_text())["info"]["settings"] for p in (tmp_path / "out").glob("*-kept.manifest.json")]
    assert infos and all(i["top_k"] == 1 and i["model"] == "another-model" for i in infos)


def test_no_resume_removes_kept_shards_of_other_settings(tmp_path):
    import random

    rng = random.Random(0)  # incompressible tails, so 1 KiB shards roll several times
    pairs = [Pair(p.query, f"{p.passage} {rng.getrandbits(32768):x}", p.source) for p in constructed_pairs()]
    write(tmp_path / "raw", pairs, shard_bytes=1024)
    run = dict(pool_size=100, show_progress=False)
    consistency_filter(tmp_path / "raw", tmp_path / "out", model=TopicEncoder(), top_k=2, **run)
    n_shards = len(list((tmp_path / "raw").glob("pairs-*")))
    # part 0 of 2 with other settings and --no-resume: part 1's kept shards of the old settings must not stay
    rep = consistency_filter(tmp_path / "raw", tmp_path / "out", model=TopicEncoder(), top_k=3, part="0/2",
                             resume=False, **run)
    from e5kit.data.shards import iter_shard, list_shards

    part0 = list_shards(tmp_path / "raw")[0::2]
    assert n_shards > 2 and len(list((tmp_path / "out").glob("*-kept.manifest.json"))) == len(part0)
    assert rep["top_k"] == 3 and rep["input"] == sum(1 for s in part0 for _ in iter_shard(s))


def test_filter_counts_bad_records_instead_of_stopping(tmp_path):
    """Issue 13 item 12: the consistency filter follows the one bad-record policy."""
    from e5kit.errors import InputFormatError

    raw = tmp_path / "raw"
    raw.mkdir()
    lines = [json.dumps(p.to_dict()) for p in constructed_pairs()]
    lines.insert(3, "{oops")
    (raw / "pairs-00000.jsonl").write_text("\n".join(lines) + "\n")
    run = dict(model=TopicEncoder(), pool_size=100, top_k=2, show_progress=False)
    with pytest.raises(InputFormatError, match=r"1 of 51 pair records.* were malformed"):  # 2% > the default 1%
        consistency_filter(raw, tmp_path / "out", **run)
    rep = consistency_filter(raw, tmp_path / "out2", max_bad_fraction=0.05, **run)
    assert rep["kept"] == 40 and rep["bad_records"] == {"seen": 51, "bad": 1}
    logged = (tmp_path / "out2" / "pairs-00000-kept.bad_records.log").read_text()
    assert logged.startswith(f"{raw / 'pairs-00000.jsonl'}:4\tmalformed JSON line")


def test_faiss_loader_noise_is_silenced():
    """Issue 13 item 26: 'Could not load library with AVX2 support' lines on `pairs filter`."""
    import subprocess
    import sys

    pytest.importorskip("faiss")
    code = ("import logging, numpy as np; logging.basicConfig(level=logging.INFO); "
            "from e5kit.data.consistency import _pool_index; _pool_index(np.eye(4, dtype=np.float32))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "faiss.loader" not in proc.stderr and "Could not load library" not in proc.stderr
