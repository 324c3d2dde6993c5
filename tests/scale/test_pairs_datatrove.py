"""`pairs clean` on datatrove: the same kept pairs whatever the number of tasks, duplicates removed across input
shards (which `--shard` parts keep), e5kit's report and shard format, resume after a failed task, bad input."""

from __future__ import annotations

import json
import random
import sys

import pytest

from e5kit.data import Pair, PairWriter, iter_pairs
from e5kit.data.filters import RuleConfig, filter_rules
from e5kit.errors import E5kitError

pytest.importorskip("datatrove", reason="the scale extra (datatrove) is not installed: pip install 'e5kit[scale]'")

from e5kit.scale.pairs import PipelineSettings, clean_pairs, minhash_banding  # noqa: E402
from e5kit.scale.steps import split_files  # noqa: E402

WORDS = ("river mountain garden window market teacher engine library bottle forest station kitchen winter summer "
         "doctor village letter bridge island morning evening picture dinner animal flower school paper story "
         "music table water light stone field cloud house road friend family answer number country people city "
         "history science reason change power money health nature energy language ocean planet storm valley "
         "harbor castle painter farmer sailor pilot writer singer dancer builder driver").split()
CFG = dict(english=False, decontaminate=False, min_passage_tokens=4)


def _passage(rng: random.Random, n: int = 60) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)) + "."


def make_input(root, shards: int = 4, per_shard: int = 30, seed: int = 0):
    """`shards` input shard files of distinct random pairs, with duplicates planted across shards:
    one exact duplicate (shard 0 -> shard 3, other case and punctuation), one near duplicate (the same passage
    under another query, shard 1 -> shard 2) and one rule drop (a too-short passage). Returns (folder, planted)."""
    rng = random.Random(seed)
    folder = root / "raw"
    shard_pairs = [[Pair(f"question {s} {i} {rng.choice(WORDS)}", _passage(rng), f"src{s % 2}")
                    for i in range(per_shard)] for s in range(shards)]
    last, mid = shards - 1, min(1, shards - 1)
    first = shard_pairs[0][min(3, per_shard - 1)]
    exact = Pair(first.query.upper() + " ?", first.passage.upper().replace(".", " !"), "src1")
    near_of = shard_pairs[mid][min(5, per_shard - 1)]
    near = Pair("a different question entirely", near_of.passage, "src0")
    shard_pairs[last].insert(min(7, per_shard), exact)
    shard_pairs[min(2, last)].insert(min(11, per_shard), near)
    shard_pairs[min(2, last)].append(Pair("short passage question", "too short", "src0"))
    for s, pairs in enumerate(shard_pairs):
        with PairWriter(folder, prefix=f"in{s}", shard_bytes=1 << 20) as w:
            for p in pairs:
                w.write(p)
    return folder, {"exact": exact.id, "exact_of": first.id, "near": near.id, "near_of": near_of.id}


def kept_ids(folder) -> list[str]:
    return [p.id for p in iter_pairs(folder)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One input, cleaned by datatrove with 1 and 4 tasks, and by today's `--shard i/4` parts."""
    root = tmp_path_factory.mktemp("dt")
    src, planted = make_input(root)
    cfg = RuleConfig(**CFG)
    one = clean_pairs(src, root / "t1", cfg, tasks=1, workers=1, show_progress=False)
    four = clean_pairs(src, root / "t4", cfg, tasks=4, workers=2, show_progress=False)
    for i in range(4):
        filter_rules(src, root / "parts", cfg, part=f"{i}/4", show_progress=False)
    return root, src, planted, one, four


def test_same_kept_pair_ids_with_1_and_4_tasks(runs):
    root, _, _, one, four = runs
    ids1, ids4 = kept_ids(root / "t1"), kept_ids(root / "t4")
    assert len(ids1) == len(set(ids1)) == one["kept"] == four["kept"]
    assert set(ids1) == set(ids4)
    assert ids1 == ids4  # the order too: task r's block comes before task r+1's
    assert one["steps"] == four["steps"]


def test_duplicates_across_input_shards_removed_with_4_tasks(runs):
    root, _, planted, _, four = runs
    ids4 = set(kept_ids(root / "t4"))
    assert planted["exact_of"] in ids4 and planted["near_of"] in ids4  # the first copy stays
    assert planted["exact"] not in ids4 and planted["near"] not in ids4
    reasons = {s["filter"]: s["reasons"] for s in four["steps"]}
    assert reasons["exact_dedup"] == {"exact_duplicate": 1}
    assert reasons["near_dedup"] == {"near_duplicate": 1}
    assert reasons["length"] == {"passage_short_chars": 1}


def test_duplicates_across_input_shards_survive_shard_parts(runs):
    """Today's `--shard i/N` deduplicates within each part only: both copies of each planted pair survive."""
    root, _, planted, one, _ = runs
    parts = set(kept_ids(root / "parts"))
    assert {planted["exact"], planted["exact_of"], planted["near"], planted["near_of"]} <= parts
    assert len(parts) == one["kept"] + 2


def test_report_and_shards_in_e5kit_format(runs):
    root, _, _, one, four = runs
    rep = json.loads((root / "t4" / "report-rules.json").read_text())
    assert rep == four
    assert rep["input"] == 4 * 30 + 3 and rep["kept"] == rep["input"] - 3
    assert [s["filter"] for s in rep["steps"]] == ["length", "exact_dedup", "near_dedup"]
    assert rep["steps"][-1]["out"] == rep["kept"]
    assert sum(c["input"] for c in rep["by_source"].values()) == rep["input"]
    assert sum(c["kept"] for c in rep["by_source"].values()) == rep["kept"]
    assert rep["engine"]["tasks"] == 4 and rep["engine"]["minhash"]["buckets"] * \
        rep["engine"]["minhash"]["hashes_per_bucket"] == 64
    assert rep["examples"]["exact_duplicate"]
    manifests = sorted((root / "t4").glob("*.manifest.json"))
    assert [m.name for m in manifests] == [f"pairs-part{r:03d}of004.manifest.json" for r in range(4)]
    assert all(json.loads(m.read_text())["done"] for m in manifests)
    assert sum(json.loads(m.read_text())["pairs"] for m in manifests) == rep["kept"]
    assert (root / "t1" / "pairs.manifest.json").exists()


def test_train_reads_the_output(runs):
    from e5kit.train.data import expand_paths

    root = runs[0]
    files = expand_paths([str(root / "t4")])
    assert files and all("/.datatrove/" not in f for f in files)


def test_rerun_of_a_finished_run_does_nothing_and_keeps_the_output(runs):
    root, src, _, one, _ = runs
    before = {p: p.stat().st_mtime_ns for p in (root / "t1").glob("pairs-*")}
    again = clean_pairs(src, root / "t1", RuleConfig(**CFG), tasks=1, show_progress=False)
    assert again == one
    assert {p: p.stat().st_mtime_ns for p in (root / "t1").glob("pairs-*")} == before


def test_failed_task_is_named_and_a_rerun_resumes_after_the_completed_ones(tmp_path):
    src, _ = make_input(tmp_path)
    broken = sorted(src.glob("in2-*.jsonl.gz"))[0]
    good = broken.read_bytes()
    broken.write_text('{"query": "no passage"}\n')
    cfg = RuleConfig(**CFG)
    with pytest.raises(E5kitError, match=r"stage 'rules': task\(s\) 2, 3 of 4 did not finish.*task_00002\.log"):
        clean_pairs(src, tmp_path / "out", cfg, tasks=4, workers=1, max_bad_fraction=0.0)
    done = tmp_path / "out" / ".datatrove" / "filtered"
    assert sorted(p.name for p in done.iterdir()) == ["00000.jsonl.gz", "00001.jsonl.gz"]
    stamp = (done / "00000.jsonl.gz").stat().st_mtime_ns
    broken.write_bytes(good)
    rep = clean_pairs(src, tmp_path / "out", cfg, tasks=4, workers=1, max_bad_fraction=0.0)
    assert (done / "00000.jsonl.gz").stat().st_mtime_ns == stamp  # task 0 was not run again
    fresh = clean_pairs(src, tmp_path / "fresh", cfg, tasks=4, workers=2)
    assert set(kept_ids(tmp_path / "out")) == set(kept_ids(tmp_path / "fresh"))
    assert rep["kept"] == fresh["kept"]


def test_other_settings_are_refused_on_resume_and_no_resume_starts_over(tmp_path):
    src, _ = make_input(tmp_path, shards=2, per_shard=10)
    cfg = RuleConfig(**CFG)
    clean_pairs(src, tmp_path / "out", cfg, tasks=2, workers=1)
    with pytest.raises(E5kitError, match="tasks: 2 != 1"):
        clean_pairs(src, tmp_path / "out", cfg, tasks=1)
    rep = clean_pairs(src, tmp_path / "out", cfg, tasks=1, resume=False)
    assert [m.name for m in (tmp_path / "out").glob("*.manifest.json")] == ["pairs.manifest.json"]
    assert len(kept_ids(tmp_path / "out")) == rep["kept"]


def test_rule_checks_and_language_run_as_datatrove_filters(tmp_path):
    from tests.data.dumps import ENGLISH, GERMAN

    src = tmp_path / "raw"
    with PairWriter(src, shard_bytes=1 << 20) as w:
        w.write(Pair("Farm life", ENGLISH, "web"))
        w.write(Pair("Bauernhof", GERMAN, "web"))
        w.write(Pair("Evaluation text", "this passage is a query of the evaluation set", "web"))
    evald = tmp_path / "eval"
    evald.mkdir()
    (evald / "queries.jsonl").write_text(json.dumps({"_id": "1", "text": "this passage is a query of the "
                                                                         "evaluation set"}) + "\n")
    cfg = RuleConfig(eval_dirs=[str(evald)], default_eval_sets=False)
    rep = clean_pairs(src, tmp_path / "out", cfg, tasks=2, workers=1)
    reasons = {s["filter"]: s["reasons"] for s in rep["steps"]}
    assert reasons["decontaminate"] == {"eval_passage_match": 1}
    assert reasons["language"] == {"not_english": 1}
    assert [p.query for p in iter_pairs(tmp_path / "out")] == ["Farm life"]
    assert rep["decontamination"]["eval_texts"] == 1


def test_minhash_banding_and_task_blocks():
    assert minhash_banding(64, 0.9) == (4, 16)
    assert minhash_banding(128, 0.8) == (8, 16)
    assert split_files(10, 4) == [(0, 2), (2, 5), (5, 7), (7, 10)]
    assert split_files(2, 4) == [(0, 0), (0, 1), (1, 1), (1, 2)]


@pytest.mark.parametrize("bad, match", [
    (dict(tasks=0), "tasks must be a positive int"),
    (dict(tasks="4"), "tasks must be a positive int"),
    (dict(workers=0), "workers must be"),
    (dict(executor="spark"), "executor must be one of local, slurm, ray"),
    (dict(executor="slurm"), "needs a partition"),
    (dict(part="0/2"), "exclude each other"),
])
def test_bad_settings_are_refused_before_any_work(tmp_path, bad, match):
    src, _ = make_input(tmp_path, shards=1, per_shard=3)
    with pytest.raises((ValueError, TypeError), match=match):
        clean_pairs(src, tmp_path / "out", RuleConfig(**CFG), **bad)
    assert not (tmp_path / "out").exists()


def test_missing_input_and_same_folder_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError):
        clean_pairs(tmp_path / "nope", tmp_path / "out")
    src, _ = make_input(tmp_path, shards=1, per_shard=3)
    with pytest.raises(ValueError, match="must differ"):
        clean_pairs(src, src)


def test_without_datatrove_one_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datatrove", None)
    with pytest.raises(E5kitError, match=r"e5kit\[scale\]"):
        clean_pairs(tmp_path, tmp_path / "out")


def test_pipeline_settings_defaults():
    s = PipelineSettings()
    assert (s.executor, s.tasks, s.workers) == ("local", 1, 1)


def test_cli_pairs_clean_with_executor(tmp_path, capsys):
    from e5kit.cli import main

    src, _ = make_input(tmp_path, shards=2, per_shard=5)
    out = tmp_path / "out"
    assert main(["pairs", "clean", str(src), "-o", str(out), "--executor", "local", "--tasks", "2", "--workers", "2",
                 "--no-english", "--no-decontaminate", "--no-progress"]) == 0
    assert "kept 10 of 13 pairs" in capsys.readouterr().out
    assert main(["pairs", "clean", str(src), "-o", str(tmp_path / "o2"), "--tasks", "2", "--shard", "0/2",
                 "--no-english", "--no-decontaminate"]) == 1
    assert "exclude each other" in capsys.readouterr().err


def test_ray_executor_keeps_the_same_pairs(runs, local_ray):
    """The same pipeline on datatrove's Ray executor (a local Ray, 2 CPUs): the same kept pairs."""
    root, src, _, one, _ = runs
    rep = clean_pairs(src, root / "ray", RuleConfig(**CFG), executor="ray", tasks=4, workers=2)
    assert set(kept_ids(root / "ray")) == set(kept_ids(root / "t1"))
    assert rep["steps"] == one["steps"] and rep["engine"]["executor"] == "ray"
