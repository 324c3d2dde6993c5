"""`pairs stats` and the `e5kit pairs` command line end to end on fixtures."""

from __future__ import annotations

import json

import pytest

from e5kit.cli import main
from e5kit.data import Pair, PairWriter, iter_pairs
from e5kit.data.stats import pair_stats
from tests.data import dumps


def test_stats_counts_lengths_reports_and_samples(tmp_path):
    with PairWriter(tmp_path) as w:
        for i in range(30):
            w.write(Pair("q" * (i + 1), "p" * (10 * i + 5), "a" if i < 20 else "b"))
    (tmp_path / "report-rules.json").write_text(json.dumps({"input": 40, "kept": 30, "steps": []}))
    st = pair_stats(tmp_path, samples=2)
    assert st["pairs"] == 30 and st["sources"]["a"]["pairs"] == 20 and st["sources"]["b"]["pairs"] == 10
    assert st["sources"]["a"]["query_chars_median"] == 10  # lengths 1..20
    assert len(st["sources"]["b"]["samples"]) == 2
    assert st["filters"]["report-rules.json"]["kept"] == 30
    png = tmp_path / "stats" / "lengths.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and (tmp_path / "stats" / "stats.json").exists()
    with pytest.raises(ValueError, match="samples"):
        pair_stats(tmp_path, samples=-1)


def test_cli_build_clean_stats(tmp_path, capsys):
    dumps.wordnet_data(tmp_path)
    raw, clean = tmp_path / "raw", tmp_path / "clean"
    assert main(["pairs", "build", "wordnet", str(tmp_path / "data.noun"), "-o", str(raw), "--no-progress",
                 "--shard-size", "64K"]) == 0
    assert "3 pairs in 1 shards" in capsys.readouterr().out
    evals = tmp_path / "evals"
    evals.mkdir()
    (evals / "t.jsonl").write_text(json.dumps({"text": "above average in size"}) + "\n")
    assert main(["pairs", "clean", str(raw), "-o", str(clean), "--eval-dir", str(evals), "--no-near-dedup",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "decontaminate" in out and "kept 2 of 3" in out  # the gloss of "big" is evaluation text
    assert [p.query for p in iter_pairs(clean)] == ["dog", "able"]
    assert main(["pairs", "stats", str(clean), "--samples", "1"]) == 0
    assert "wordnet" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["pairs", "build", "papers", "-o", str(tmp_path / "o"), "--no-progress"]) == 1
    assert "needs input files" in capsys.readouterr().err
    assert main(["pairs", "build", "wordnet", str(tmp_path / "nope"), "-o", str(tmp_path / "o")]) == 1
    capsys.readouterr()
    with pytest.raises(SystemExit) as usage:  # a malformed option is a usage error (exit 2), named by argparse
        main(["pairs", "build", "wordnet", "-o", str(tmp_path / "o"), "--option", "oops"])
    assert usage.value.code == 2 and "KEY=VALUE" in capsys.readouterr().err
    assert main(["pairs", "clean", str(tmp_path / "missing"), "-o", str(tmp_path / "c")]) == 1
    with pytest.raises(SystemExit) as exc:
        main(["pairs", "build", "gopher", "-o", "x"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["pairs", "build", "wordnet", "-o", "x", "--shard-size", "lots"])


def test_cli_bad_records_options_and_empty_folders(tmp_path, capsys, caplog):
    """Issue 13 items 12, 23, 24 at the command line."""
    from tests.data.test_build import papers_with_bad_lines

    papers = papers_with_bad_lines(tmp_path)
    out = str(tmp_path / "o")
    assert main(["pairs", "build", "papers", str(papers), "-o", out, "--no-progress"]) == 1
    assert "25 of 50 input records were malformed" in capsys.readouterr().err
    assert main(["pairs", "build", "papers", str(papers), "-o", out, "--no-progress",
                 "--max-bad-fraction", "0.5"]) == 0
    captured = capsys.readouterr()
    assert "25 pairs" in captured.out and "skipped 25 malformed of 50 input records" in caplog.text
    with pytest.raises(SystemExit) as usage:
        main(["pairs", "build", "papers", str(papers), "-o", out, "--max-bad-fraction", "2"])
    assert usage.value.code == 2 and "between 0 and 1" in capsys.readouterr().err
    assert main(["pairs", "build", "papers", str(papers), "-o", str(tmp_path / "o2"), "--option", "skip_bad=1"]) == 1
    err = capsys.readouterr().err
    assert "unknown option 'skip_bad'" in err and "unexpected keyword" not in err
    (tmp_path / "empty").mkdir()
    assert main(["pairs", "build", "wordnet", str(tmp_path / "empty"), "-o", str(tmp_path / "o3")]) == 1
    assert "no input files" in capsys.readouterr().err
