"""`mine_negatives`: false-negative guards, sampling, resume, parts, refusals (tiny index, tiny E5 model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from e5kit.data.mine import MineSettings, _hash, mine_negatives
from e5kit.data.shards import OutputSettings, iter_pairs
from e5kit.errors import E5kitError
from e5kit.index.layout import IndexFormatError

QUIET = OutputSettings(show_progress=False)


def _mine(train_pairs, mine_index, out, **options):
    index, model = mine_index
    output = options.pop("output", QUIET)
    return mine_negatives(train_pairs, out, index=index, model=model, output=output, **options)


def _texts(index):
    return {rec.id: rec.text for rec in index.corpus_records()}


def _positives(train_pairs):
    """query -> every judged positive document id (by the qrels the pairs came from)."""
    out: dict[str, set[str]] = {}
    for p in iter_pairs(train_pairs):
        out.setdefault(p.query, set()).add(p.meta["doc_id"])
    return out


@pytest.mark.parametrize("method", ["dense", "bm25", "rrf", "weighted"])
def test_never_a_judged_positive(train_pairs, mine_index, tmp_path, method):
    """No pair gets any positive of its query (q0 has two), nor a copy of one under another id (d39 = d1)."""
    rep = _mine(train_pairs, mine_index, tmp_path / "out", method=method, negatives=30)
    pairs = list(iter_pairs(tmp_path / "out"))
    texts = _texts(mine_index[0])
    positives = _positives(train_pairs)
    assert len(pairs) == rep.pairs == 11 and rep.complete
    for p in pairs:
        ids = p.meta["mined"]["negative_ids"]
        assert not set(ids) & positives[p.query]
        assert all(_hash(texts[i]) not in {_hash(texts[d]) for d in positives[p.query]} for i in ids)
        assert p.negatives == [texts[i] for i in ids]
        assert len(set(map(_hash, p.negatives))) == len(p.negatives)  # no text twice
    q1 = next(p for p in pairs if p.meta["doc_id"] == "d1")
    assert "d39" not in q1.meta["mined"]["negative_ids"]  # same text as its positive, another id
    q0 = [p for p in pairs if p.meta["query_id"] == "q0"]
    assert len(q0) == 2 and all({"d0", "d10"}.isdisjoint(p.meta["mined"]["negative_ids"]) for p in q0)
    # every pair's own positive is retrieved at depth 40 (it shares the query's words), and q0's other positive
    # too, except under BM25 alone, which returns only documents sharing a query term (d10 shares none with q0)
    shares_q0 = method != "bm25" or bool(set(texts["d10"].split()) & set(next(iter(q0)).query.split()))
    assert rep.dropped_positive >= 11 + (2 if shares_q0 else 1)


def test_kept_counts_and_report(train_pairs, mine_index, tmp_path):
    rep = _mine(train_pairs, mine_index, tmp_path / "out", negatives=3)
    assert rep.kept_histogram == {3: 11}
    saved = json.loads((tmp_path / "out" / "mine-report.json").read_text())
    assert saved["pairs"] == 11 and saved["kept_histogram"] == {"3": 11}
    assert saved["mine"]["negatives"] == 3 and saved["mine"]["method"] == "dense"
    for p in iter_pairs(tmp_path / "out"):
        m = p.meta["mined"]
        assert m["kept"] == len(p.negatives) == 3
        assert m["candidates"] == 40  # depth 100 capped at the corpus size


def test_skip_top_and_best_first(train_pairs, mine_index, tmp_path):
    """Without a range the best-ranked survivors are kept; skip_top removes exactly the first ranks."""
    from e5kit.index.search import search

    index, model = mine_index
    _mine(train_pairs, mine_index, tmp_path / "top", negatives=4, skip_top=3)
    positives = _positives(train_pairs)
    texts = _texts(index)
    for p in iter_pairs(tmp_path / "top"):
        ranked = [h.id for h in search(index, [p.query], k=40, model=model)[0]]
        pos_hashes = {_hash(texts[d]) for d in positives[p.query]}
        expected, seen = [], set()
        for i in ranked[3:]:
            h = _hash(texts[i])
            if i not in positives[p.query] and h not in pos_hashes and h not in seen:  # d39 repeats d1's text
                expected.append(i)
                seen.add(h)
        assert p.meta["mined"]["negative_ids"] == expected[:4]


def test_max_score_ratio_keeps_only_clearly_lower_scores(train_pairs, mine_index, tmp_path):
    index, model = mine_index
    _mine(train_pairs, mine_index, tmp_path / "r", negatives=40, max_score_ratio=0.9)
    rows = {d: r for r, d in enumerate(index.ids_of(range(len(index))))}
    checked = 0
    for p in iter_pairs(tmp_path / "r"):
        q = model.encode_queries([p.query])[0]
        pos = float(q @ index.vectors(np.array([rows[p.meta["doc_id"]]]))[0])
        for i in p.meta["mined"]["negative_ids"]:
            assert float(q @ index.vectors(np.array([rows[i]]))[0]) < 0.9 * pos + 1e-6
            checked += 1
        m = p.meta["mined"]  # every candidate is accounted for once (k = 40 keeps every survivor)
        assert m["candidates"] == sum(m[k] for k in ("dropped_positive", "dropped_top", "dropped_ratio",
                                                     "dropped_duplicate", "kept"))
    ratio = json.loads((tmp_path / "r" / "mine-report.json").read_text())
    assert ratio["dropped_ratio"] > 0 and checked > 0


def test_range_sampling_is_seeded_and_inside_the_range(train_pairs, mine_index, tmp_path):
    from e5kit.index.search import search

    index, model = mine_index
    a = _mine(train_pairs, mine_index, tmp_path / "a", negatives=3, sample_range="5:25", seed=7)
    _mine(train_pairs, mine_index, tmp_path / "b", negatives=3, sample_range="5:25", seed=7)
    _mine(train_pairs, mine_index, tmp_path / "c", negatives=3, sample_range="5:25", seed=8)
    ids = {k: [p.meta["mined"]["negative_ids"] for p in iter_pairs(tmp_path / k)] for k in "abc"}
    assert ids["a"] == ids["b"] and ids["a"] != ids["c"]
    assert a.candidates == 11 * 25  # retrieves up to the range's end
    for p, chosen in zip(iter_pairs(tmp_path / "a"), ids["a"], strict=True):
        ranks = {h.id: h.rank for h in search(index, [p.query], k=25, model=model)[0]}
        got = [ranks[i] for i in chosen]
        assert all(5 <= r <= 25 for r in got) and got == sorted(got)


def test_resume_equals_an_uninterrupted_run(train_pairs, mine_index, tmp_path, monkeypatch):
    """A run killed after its first shard resumes there and ends with the pairs of an uninterrupted run."""
    from e5kit.data import mine as mod

    whole = tmp_path / "whole"
    _mine(train_pairs, mine_index, whole, negatives=2, chunk=4)
    calls = {"n": 0}
    real = mod.select

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 9:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    class SmallShards(mod.PairWriter):  # a shard every 3 pairs (shard_bytes cannot go below 1 KiB)
        def write(self, pair):
            super().write(pair)
            if self._shard_pairs == 3:
                self._finish_shard()

    monkeypatch.setattr(mod, "select", dying)
    monkeypatch.setattr(mod, "PairWriter", SmallShards)
    out = tmp_path / "resumed"
    settings = OutputSettings(show_progress=False)
    with pytest.raises(KeyboardInterrupt):
        _mine(train_pairs, mine_index, out, negatives=2, chunk=4, output=settings)
    first = json.loads((out / "pairs.manifest.json").read_text())
    assert not first["done"] and first["pairs"] == 6  # two finished shards; the pairs 7-8 were dropped
    monkeypatch.setattr(mod, "select", real)
    rep = _mine(train_pairs, mine_index, out, negatives=2, chunk=4, output=settings)
    assert rep.resumed_from == first["pairs"] and rep.pairs == 11
    assert [p.to_dict() for p in iter_pairs(out)] == [p.to_dict() for p in iter_pairs(whole)]


def test_resume_with_other_settings_is_refused(train_pairs, mine_index, tmp_path):
    _mine(train_pairs, mine_index, tmp_path / "o", negatives=2)
    with pytest.raises(E5kitError, match="other settings"):
        _mine(train_pairs, mine_index, tmp_path / "o", negatives=3)
    again = _mine(train_pairs, mine_index, tmp_path / "o", negatives=2)  # same settings: already complete
    assert again.complete and again.pairs == 0


def test_parts_together_equal_the_whole(train_pairs, mine_index, tmp_path):
    _mine(train_pairs, mine_index, tmp_path / "whole", negatives=2)
    for i in range(3):
        _mine(train_pairs, mine_index, tmp_path / "parts", negatives=2,
              output=OutputSettings(part=f"{i}/3", show_progress=False))
    whole = {p.id: p.to_dict() for p in iter_pairs(tmp_path / "whole")}
    parts = [p.to_dict() for p in iter_pairs(tmp_path / "parts")]
    assert len(parts) == len(whole) and {p["id"]: p for p in parts} == whole
    assert (tmp_path / "parts" / "mine-report-part001of003.json").is_file()


def test_another_model_than_the_index_is_refused(train_pairs, mine_index, tiny_bert, tmp_path):
    from e5kit import E5

    with pytest.raises(IndexFormatError, match="not the model that built"):
        mine_negatives(train_pairs, tmp_path / "x", index=mine_index[0], model=E5(str(tiny_bert)), output=QUIET)
    assert not (tmp_path / "x").exists()  # refused before anything was written


@pytest.mark.parametrize("options, match", [
    ({"method": "splade"}, "method"), ({"negatives": 0}, "negatives"), ({"skip_top": -1}, "skip_top"),
    ({"max_score_ratio": 0.0}, "max_score_ratio"), ({"sample_range": "9:3"}, "sample_range"),
    ({"sample_range": "abc"}, "sample_range"), ({"depth": "10"}, "depth"), ({"alpha": 2.0}, "alpha"),
])
def test_bad_settings(options, match):
    with pytest.raises(ValueError, match=match):
        MineSettings(**options).validated()


def test_unknown_option_is_refused(train_pairs, mine_index, tmp_path):
    with pytest.raises(TypeError, match="negatives"):
        _mine(train_pairs, mine_index, tmp_path / "x", negativs=3)


def test_bm25_method_needs_a_bm25_index(train_pairs, beir_dir, tiny_e5, tmp_path):
    from e5kit import E5
    from e5kit.data.mine import prepare_index

    model = E5(str(tiny_e5))
    index = prepare_index(tmp_path / "idx", [str(beir_dir)], model, show_progress=False)  # dense only
    with pytest.raises(IndexFormatError, match="no BM25 index"):
        mine_negatives(train_pairs, tmp_path / "o", index=index, model=model, method="bm25", output=QUIET)
    with pytest.raises(E5kitError, match="index bm25"):
        prepare_index(tmp_path / "idx", None, model, method="bm25")


def test_extra_qrels_add_judged_positives(train_pairs, mine_index, tmp_path):
    """A qrels file can name more positives of a query (by meta.query_id): they are never mined either."""
    base = {p.meta["query_id"]: p.meta["mined"]["negative_ids"]
            for p in iter_pairs(_mine_out(train_pairs, mine_index, tmp_path / "a"))}
    banned = base["q2"][:2]
    qrels = tmp_path / "more.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q2\t{d}\t1\n" for d in banned))
    _mine(train_pairs, mine_index, tmp_path / "b", negatives=3, qrels=str(qrels))
    after = {p.meta["query_id"]: p.meta["mined"]["negative_ids"] for p in iter_pairs(tmp_path / "b")}
    assert not set(banned) & set(after["q2"]) and after["q5"] == base["q5"]


def _mine_out(train_pairs, mine_index, out):
    _mine(train_pairs, mine_index, out, negatives=3)
    return out
