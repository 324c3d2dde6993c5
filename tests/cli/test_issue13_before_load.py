"""Issue 13 items 20, 21, 29, 31 beyond the first spots fixed: `index build`, `mine` and `train` check their inputs
and outputs before any model loads, name the file of a broken Parquet corpus, and a run that cannot start leaves no
empty folder. A model path that does not exist shows which came first: its error would name it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e5kit.cli import build_parser, main


def _docs(tmp_path: Path) -> Path:
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"_id": str(i), "text": f"doc {i}"}) + "\n" for i in range(3)))
    return src


def _fails_before_the_model(argv: list[str], named: str, capsys) -> str:
    assert main([*argv, "--model", "/no/such-model"]) == 1
    err = capsys.readouterr().err
    assert named in err and "such-model" not in err, err
    return err


def test_i13_29_index_build_checks_corpus_shard_and_output_before_the_model(tmp_path, capsys):
    src = _docs(tmp_path)
    _fails_before_the_model(["index", "build", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "i1")],
                            "nope.jsonl", capsys)
    _fails_before_the_model(["index", "build", str(src), "-o", str(tmp_path / "i2"), "--shard", "5/3"], "5/3", capsys)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep")
    _fails_before_the_model(["index", "build", str(src), "-o", str(foreign)], "not empty", capsys)
    assert (foreign / "mine.txt").read_text() == "keep"
    assert not (tmp_path / "i1").exists() and not (tmp_path / "i2").exists()


def test_i13_20_index_build_into_an_unwritable_place_is_refused_before_any_work(tmp_path, capsys):
    # /proc takes no new files, even for root (os.access says it would): the probe file finds out
    _fails_before_the_model(["index", "build", str(_docs(tmp_path)), "-o", "/proc/e5kit-test-index"],
                            "not writable", capsys)


def test_i13_21_fake_parquet_corpus_names_the_file_in_search_and_index_build(tmp_path, capsys, tiny_e5):
    fake = tmp_path / "fake.parquet"
    fake.write_text("not parquet")
    from e5kit.index.corpus import iter_corpus
    from e5kit.io.records import InputFormatError

    with pytest.raises(InputFormatError, match="fake.parquet: not a readable Parquet file"):
        list(iter_corpus([fake]))
    assert main(["search", str(fake), "--query", "x", "--model", str(tiny_e5)]) == 1
    assert "fake.parquet: not a readable Parquet file" in capsys.readouterr().err
    assert main(["index", "build", str(fake), "-o", str(tmp_path / "idx"), "--model", str(tiny_e5)]) == 1
    assert "fake.parquet: not a readable Parquet file" in capsys.readouterr().err


def test_i13_29_mine_checks_pairs_output_and_index_before_the_model(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "q", "passage": "p"}) + "\n")
    _fails_before_the_model(["mine", str(tmp_path / "nope"), "-o", str(tmp_path / "o"), "--index", str(tmp_path)],
                            "no such pairs folder or file", capsys)
    _fails_before_the_model(["mine", str(pairs), "-o", str(tmp_path / "o"), "--index", str(tmp_path / "noidx")],
                            "holds no e5kit index", capsys)
    (tmp_path / "afile").write_text("x")
    _fails_before_the_model(["mine", str(pairs), "-o", str(tmp_path / "afile"), "--index", str(tmp_path),
                             "--corpus", str(pairs)], "is a file", capsys)
    _fails_before_the_model(["mine", str(pairs), "-o", str(tmp_path / "o"), "--index", str(tmp_path / "i"),
                             "--corpus", str(tmp_path / "nocorpus.jsonl")], "nocorpus.jsonl", capsys)
    assert not (tmp_path / "o").exists()


def _train_with_model_init(tmp_path: Path, monkeypatch, init_error: Exception):
    """(trainer module, config factory): model init patched to raise `init_error`; the factory gives a config
    over one valid pair file and a tiny model, with fields overridden by keyword."""
    from e5kit.train import trainer
    from e5kit.train.config import Source, TrainConfig
    from tests.conftest import make_tiny_bert

    def fail(cfg):
        raise init_error

    monkeypatch.setattr(trainer, "initial_model", fail)
    pairs = tmp_path / "p.jsonl"
    pairs.write_text(json.dumps({"query": "q", "passage": "p"}) + "\n")
    base = dict(init=str(make_tiny_bert(tmp_path / "m")), sources=[Source("s", [str(pairs)], 1.0)], batch_size=4,
                steps=2, max_length=16, show_progress=False, device="cpu")
    return trainer, lambda **changes: TrainConfig(**{**base, **changes})


def test_i13_29_31_train_checks_sources_and_init_first_and_leaves_no_empty_folder(tmp_path, monkeypatch):
    from e5kit.train.config import Source

    trainer, config = _train_with_model_init(
        tmp_path, monkeypatch, AssertionError("the model was loaded before the inputs were checked"))
    run = tmp_path / "run-a"
    with pytest.raises(Exception, match="nope.jsonl"):
        trainer.train(config(output_dir=str(run), sources=[Source("s", [str(tmp_path / "nope.jsonl")], 1.0)]))
    assert not run.exists()
    with pytest.raises(Exception, match="no-init"):
        trainer.train(config(output_dir=str(run), init=str(tmp_path / "no-init")))
    assert not run.exists()


def test_i13_31_a_run_that_fails_while_starting_removes_only_the_empty_folder_it_made(tmp_path, monkeypatch):
    trainer, config = _train_with_model_init(tmp_path, monkeypatch, RuntimeError("model init failed"))
    with pytest.raises(RuntimeError, match="model init failed"):
        trainer.train(config(output_dir=str(tmp_path / "new-run")))
    assert not (tmp_path / "new-run").exists()
    mine = tmp_path / "users-folder"
    mine.mkdir()
    with pytest.raises(RuntimeError, match="model init failed"):
        trainer.train(config(output_dir=str(mine)))
    assert mine.is_dir()  # it was there before: never removed


def test_i13_quiet_short_flag_after_the_subcommand_where_free():
    parser = build_parser()
    assert parser.parse_args(["encode", "a.txt", "-o", "b.npy", "--role", "none", "-q"]).quiet is True
    assert parser.parse_args(["search", "c.jsonl", "-q", "water"]).query == ["water"]  # search keeps -q for --query
