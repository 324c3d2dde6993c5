"""`e5kit eval` and `e5kit report` end to end on a tiny model and tiny local datasets."""

from __future__ import annotations

import json

import pytest

from e5kit.cli import main

from .tiny_data import make_beir, make_pairs


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-data")
    return {"beir": make_beir(root / "minibeir", seed=5, n_docs=20, n_queries=5),
            "sts": make_pairs(root / "minists.test.jsonl.gz", seed=6, n=20)}


def test_eval_writes_one_json_per_task_then_reuses(word_e5, datasets, tmp_path, capsys):
    out = tmp_path / "results"
    tasks = f"retrieval:{datasets['beir']},sts:{datasets['sts']}"
    args = ["eval", "--model", str(word_e5), "--tasks", tasks, "--output", str(out), "--no-progress"]
    assert main(args + ["--table", str(tmp_path / "t.md")]) == 0
    table = capsys.readouterr().out
    assert "| minibeir | retrieval | ndcg_at_10 |" in table and "| minists | sts | cosine_spearman |" in table
    assert (tmp_path / "t.md").read_text().strip() == table.strip()
    [path] = out.glob("e5-small-unsupervised@*/minibeir.json")  # a folder's key: name @ short fingerprint
    r = json.loads(path.read_text())
    assert path.parent.name == "e5-small-unsupervised@" + r["model"]["fingerprint"][:8] == r["model_slug"]
    assert r["task_type"] == "retrieval" and r["dataset"]["split"] == "test"
    assert r["prefix_policy"]["inputs"]["document"]["prefix"] == "passage: "
    assert r["model"]["fingerprint"] and r["precision"] == "fp32"
    assert r["versions"]["torch"] and r["versions"]["transformers"] and r["versions"]["e5kit"]
    assert r["counts"]["queries"] == 5 and r["encode"]["tokens"] > 0 and r["encode"]["tokens_per_second"] > 0
    assert r["wall_seconds"] > 0 and r["cpu_seconds"] > 0 and 0 <= r["main_score_value"] <= 1
    before = path.stat().st_mtime_ns
    assert main(args) == 0  # reused: the file is not rewritten
    assert path.stat().st_mtime_ns == before
    assert main(args + ["--overwrite"]) == 0
    assert path.stat().st_mtime_ns != before


def test_bm25_and_report_compare(word_e5, datasets, tmp_path, capsys):
    out = tmp_path / "results"
    task = f"retrieval:{datasets['beir']}"
    assert main(["eval", "--model", "bm25", "--tasks", task, "--output", str(out), "--no-progress"]) == 0
    assert main(["eval", "--model", str(word_e5), "--tasks", task, "--output", str(out), "--no-progress"]) == 0
    bm = json.loads((out / "bm25" / "minibeir.json").read_text())
    assert bm["model"]["k1"] == 0.9 and bm["encode"]["tokens"] == 0 and bm["options"] == {}
    assert main(["eval", "--model", "bm25", "--tasks", task, "--output", str(tmp_path / "other"), "--no-progress",
                 "--ignore-identical-ids"]) == 0
    assert json.loads((tmp_path / "other" / "bm25" / "minibeir.json").read_text())["options"] == {
        "ignore_identical_ids": True}
    capsys.readouterr()
    assert main(["report", str(out), "--compare", "bm25", "e5-small-unsupervised"]) == 0
    table = capsys.readouterr().out
    assert "| task | metric | bm25 | e5-small-unsupervised@" in table and " | diff |" in table
    assert "| minibeir | ndcg_at_10 |" in table
    png = out / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "report.md").read_text().strip() == table.strip()


@pytest.mark.parametrize("argv", [
    ["eval", "--model", "bm25", "--tasks", "nosuchtask"],
    ["eval", "--model", "bm25", "--tasks", ","],
    ["report", "/nonexistent/results"],
])
def test_errors_are_one_line_exit_1(argv, tmp_path, capsys):
    assert main(argv + (["--output", str(tmp_path)] if argv[0] == "eval" else [])) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"e5kit {argv[0]}: error:") and "\n" not in err


def test_bm25_refuses_sts_and_report_unknown_model(datasets, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["eval", "--model", "bm25", "--tasks", f"sts:{datasets['sts']}", "--output", str(out)]) == 1
    assert "can only do retrieval" in capsys.readouterr().err
    assert main(["eval", "--model", "bm25", "--tasks", f"retrieval:{datasets['beir']}", "--output", str(out),
                 "--no-progress"]) == 0
    assert main(["report", str(out), "--compare", "bm25", "ghost"]) == 1
    assert "no results for 'ghost'; models found: bm25" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 1


def test_stale_results_are_recomputed_not_reused(datasets, tmp_path, caplog):
    """A folder retrained in place, another precision, changed options or a broken file: recompute."""
    import logging

    from tests.conftest import make_tiny_bert

    ckpt = make_tiny_bert(tmp_path / "ckpt", name="retrained", seed=2)
    out = tmp_path / "results"
    args = ["eval", "--model", str(ckpt), "--tasks", f"sts:{datasets['sts']}", "--output", str(out), "--no-progress"]
    assert main(args) == 0
    path = next(out.glob("*/minists.json"))
    first = json.loads(path.read_text())

    def rerun(extra=(), expect_rewrite=True, why=""):
        before = path.stat().st_mtime_ns
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="e5kit"):
            assert main(args + list(extra)) == 0
        assert (path.stat().st_mtime_ns != before) == expect_rewrite
        assert why in caplog.text

    rerun(expect_rewrite=False)  # nothing changed: reused
    make_tiny_bert(tmp_path / "ckpt", name="retrained", seed=9)  # same folder, new weights: a new key
    before = path.stat().st_mtime_ns
    assert main(args) == 0
    assert path.stat().st_mtime_ns == before  # the old weights' result is kept, not reused, not overwritten
    [path] = set(out.glob("*/minists.json")) - {path}
    second = json.loads(path.read_text())
    assert second["model"]["fingerprint"] != first["model"]["fingerprint"]
    assert second["main_score_value"] != first["main_score_value"]
    rerun(expect_rewrite=False)
    stored = json.loads(path.read_text())  # a stored fingerprint that does not match is never reused
    path.write_text(json.dumps({**stored, "model": {**stored["model"], "fingerprint": "0" * 64}}))
    rerun(why="weights changed")
    rerun(["--precision", "bf16"], why="computed in fp32, this run asks for bf16")
    rerun(["--precision", "bf16"], expect_rewrite=False)
    rerun(why="computed in bf16, this run asks for fp32")  # no precision asked means the default, fp32
    path.write_text("{not json")
    rerun(why="unreadable")
