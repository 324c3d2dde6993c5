"""Issue 13 for eval and report: one result key per checkpoint (never shared by two runs' same-named steps),
`report --compare` takes the names users type, inputs and outputs checked before a model loads, the umask."""

from __future__ import annotations

import json
import logging
import os

import pytest

from e5kit.cli import main
from tests.conftest import make_tiny_bert

from .tiny_data import make_pairs


@pytest.fixture(scope="module")
def sts_file(tmp_path_factory):
    return make_pairs(tmp_path_factory.mktemp("i13") / "minists.test.jsonl.gz", seed=6, n=20)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """runs/a and runs/b, each with a checkpoints/step-0000002 of different weights."""
    root = tmp_path_factory.mktemp("runs")
    return [make_tiny_bert(root / run / "checkpoints", name="step-0000002", seed=seed)
            for run, seed in (("a", 3), ("b", 4))]


def evaluate_cli(model, task, out, *extra):
    return main(["eval", "--model", str(model), "--tasks", task, "--output", str(out), "--no-progress", *extra])


def test_issue13_same_step_name_in_two_runs_keeps_two_results(two_runs, sts_file, tmp_path, caplog, capsys):
    out = tmp_path / "results"
    task = f"sts:{sts_file}"
    for ckpt in two_runs:
        assert evaluate_cli(ckpt, task, out) == 0
    files = sorted(out.glob("*/minists.json"))
    assert len(files) == 2, files
    results = [json.loads(f.read_text()) for f in files]
    assert {r["model_slug"].split("@")[0] for r in results} == {"a__step-0000002", "b__step-0000002"}
    assert results[0]["model"]["fingerprint"] != results[1]["model"]["fingerprint"]
    before = [f.stat().st_mtime_ns for f in files]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="e5kit"):
        for ckpt in two_runs:  # each run's result is reused, and never the other's
            assert evaluate_cli(ckpt, task, out) == 0
    assert [f.stat().st_mtime_ns for f in files] == before
    assert "weights changed" not in caplog.text and caplog.text.count("reusing") == 2
    capsys.readouterr()
    assert main(["report", str(out), "--compare", "a__step-0000002", "b__step-0000002"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert "a__step-0000002@" in head and "b__step-0000002@" in head and "diff" in head
    assert main(["report", str(out), "--compare", str(two_runs[1]), str(two_runs[0])]) == 0  # the paths eval took
    assert capsys.readouterr().out.splitlines()[0].index("b__") < head.index("diff")
    assert main(["report", str(out), "--compare", "step-0000002"]) == 1
    err = capsys.readouterr().err
    assert "'step-0000002' matches several" in err and "a__step-0000002@" in err and "b__step-0000002@" in err


def test_issue13_result_keys_are_readable_and_unique_per_checkpoint(two_runs, tmp_path):
    from e5kit.eval.models import model_slug, result_key

    assert model_slug(str(two_runs[0])) == "a__step-0000002"
    assert result_key("intfloat/e5-base-unsupervised", "ab" * 32) == "intfloat__e5-base-unsupervised"
    assert result_key("bm25", None) == "bm25"
    keys = {result_key(str(c), fp)
            for c, fp in zip(two_runs, ("12345678" + "0" * 56, "9abcdef0" + "0" * 56), strict=True)}
    assert keys == {"a__step-0000002@12345678", "b__step-0000002@9abcdef0"}
    final = tmp_path / "run9" / "checkpoints" / "final"
    final.mkdir(parents=True)
    assert model_slug(str(final)) == "run9__final"


def _fake_result(folder, key, task="scifact", value=0.5):
    path = folder / key / f"{task}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"e5kit_result": 1, "task": task, "task_type": "retrieval",
                                "main_score": "ndcg_at_10", "main_score_value": value, "model_slug": key}))


@pytest.fixture
def results_dir(tmp_path):
    out = tmp_path / "results"
    for key, value in (("bm25", 0.66), ("intfloat__e5-base-unsupervised", 0.71), ("intfloat__e5-small-v2", 0.7),
                       ("my-ckpt@0123abcd", 0.5), ("my-ckpt@4567ef01", 0.6)):
        _fake_result(out, key, value=value)
    return out


@pytest.mark.parametrize("typed, column", [
    ("e5-base-unsupervised", "intfloat__e5-base-unsupervised"),  # the README's command
    ("intfloat/e5-base-unsupervised", "intfloat__e5-base-unsupervised"),
    ("intfloat__e5-base-unsupervised", "intfloat__e5-base-unsupervised"),
    ("e5-small", "intfloat__e5-small-v2"),  # a unique prefix
    ("my-ckpt@4567", "my-ckpt@4567ef01"),
])
def test_issue13_report_compare_takes_the_names_users_type(results_dir, capsys, typed, column):
    assert main(["report", str(results_dir), "--compare", "bm25", typed]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"| task | metric | bm25 | {column} | diff |"


@pytest.mark.parametrize("typed, msg", [
    ("e5", "'e5' matches several models: intfloat__e5-base-unsupervised, intfloat__e5-small-v2"),
    ("my-ckpt", "'my-ckpt' matches several models: my-ckpt@0123abcd, my-ckpt@4567ef01"),
    ("ghost", "no results for 'ghost'; models found: bm25, intfloat__e5-base-unsupervised"),
    ("bm25", "bm25 is named twice"),
])
def test_issue13_report_compare_ambiguous_or_unknown_lists_the_names(results_dir, capsys, typed, msg):
    assert main(["report", str(results_dir), "--compare", "bm25", typed]) == 1
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1


def test_issue13_eval_checks_output_and_data_before_loading_the_model(sts_file, tmp_path, capsys):
    missing_model = tmp_path / "no-such-model"
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert evaluate_cli(missing_model, f"sts:{sts_file}", blocker / "results") == 1
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "no-such-model" not in err
    empty_data = tmp_path / "data"
    empty_data.mkdir()
    assert main(["eval", "--model", str(missing_model), "--tasks", "scifact", "--data-dir", str(empty_data),
                 "--output", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "scifact" in err and str(empty_data) in err and "no-such-model" not in err


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_issue13_eval_results_and_reports_follow_the_umask(word_e5, sts_file, tmp_path, mask):
    out = tmp_path / "results"
    old = os.umask(mask)
    try:
        assert evaluate_cli(word_e5, f"sts:{sts_file}", out, "--table", str(tmp_path / "t.md")) == 0
        assert main(["report", str(out)]) == 0
    finally:
        os.umask(old)
    written = [*out.glob("*/minists.json"), tmp_path / "t.md", out / "report.md", out / "report.png"]
    assert len(written) == 4
    for path in written:
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path


def test_issue13_eval_unwritable_table_fails_before_any_work(sts_file, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert evaluate_cli(tmp_path / "no-such-model", f"sts:{sts_file}", tmp_path / "r", "--table",
                        str(blocker / "t.md")) == 1
    err = capsys.readouterr().err
    assert "t.md" in err and "no-such-model" not in err
    assert not (tmp_path / "r").exists()
