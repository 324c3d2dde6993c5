"""Readers and the dataset registry: layouts, drop rules, user datasets, malformed files, bad names."""

from __future__ import annotations

from pathlib import Path

import pytest

from e5kit.errors import InputFormatError
from e5kit.eval import datasets as loaders
from e5kit.eval.registry import REGISTRY, default_data_dir, get_dataset, user_dataset

from .tiny_data import make_beir, make_labelled, make_pairs, write_jsonl


def test_load_beir_keeps_judged_queries_in_qrels_order(tmp_path):
    folder = make_beir(tmp_path / "b", n_docs=10, n_queries=3)
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td1\t1\nq0\td3\t2\nq0\tmissing\t1\n"
                                               "ghost\td1\t1\n")
    d = loaders.load_beir(folder)
    assert d.query_ids == ["q2", "q0"]  # "ghost" has no query text; "unjudged" has no qrels
    assert d.dropped_queries == 1
    assert d.qrels["q0"] == {"d3": 2, "missing": 1}  # a judged doc absent from the corpus stays judged
    assert d.corpus[0].keys() == {"title", "text"} and len(d.corpus_ids) == 10


@pytest.mark.parametrize(("qrels", "match"), [
    ("query-id\tcorpus-id\tscore\nq1\td1\n", "expected query-id"),
    ("query-id\tcorpus-id\tscore\nq1\td1\thigh\n", "not a number"),
    ("query-id\tcorpus-id\tscore\nzzz\td1\t1\n", "no query"),
])
def test_load_beir_bad_qrels(tmp_path, qrels, match):
    folder = make_beir(tmp_path / "b", n_docs=4, n_queries=1)
    (folder / "qrels" / "test.tsv").write_text(qrels)
    with pytest.raises(InputFormatError, match=match):
        loaders.load_beir(folder)


def test_load_beir_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        loaders.load_beir(tmp_path / "nope")
    folder = make_beir(tmp_path / "b", n_docs=4, n_queries=1)
    with pytest.raises(FileNotFoundError, match="qrels"):
        loaders.load_beir(folder, split="dev")
    (folder / "corpus.jsonl.gz").unlink()
    with pytest.raises(FileNotFoundError, match="corpus.jsonl"):
        loaders.load_beir(folder)


def test_malformed_records_name_file_and_line(tmp_path):
    bad = tmp_path / "s.jsonl"
    bad.write_text('{"sentence1": "a", "sentence2": "b", "score": 1}\n{not json}\n')
    with pytest.raises(InputFormatError, match=r"s.jsonl:2"):
        loaders.load_pairs(bad, target="score")
    write_jsonl(bad, [{"sentence1": "a", "sentence2": "b", "score": "high"}])
    with pytest.raises(InputFormatError, match="must be a number"):
        loaders.load_pairs(bad, target="score")
    write_jsonl(bad, [{"sentence1": "a", "score": 1}])
    with pytest.raises(InputFormatError, match="missing 'sentence2'"):
        loaders.load_pairs(bad, target="score")
    write_jsonl(bad, [{"text": "a", "label": [1]}])
    with pytest.raises(InputFormatError, match="label"):
        loaders.load_labelled(bad)
    write_jsonl(bad, [])
    with pytest.raises(InputFormatError, match="no labelled texts"):
        loaders.load_labelled(bad)
    with pytest.raises(InputFormatError, match="no sentence pairs"):
        loaders.load_pairs(bad, target="label")


def test_registry_names_every_shared_dataset_and_resolves(shared_data):
    assert set(REGISTRY) == {"scifact", "stsbenchmark", "sts12", "sts13", "sts14", "sts15", "sts16", "banking77",
                             "amazon_counterfactual_en", "twentynewsgroups", "twitterurl"}
    for name in REGISTRY:
        spec = get_dataset(name, shared_data)
        assert spec.task_type in ("retrieval", "sts", "classification", "clustering", "pair_classification")
        for path in (spec.path, spec.train_path):
            if path is not None:
                assert Path(path).is_absolute() and Path(path).exists(), path
    assert get_dataset("banking77", shared_data).options == {"samples_per_label": 8}
    assert get_dataset("amazon_counterfactual_en", shared_data).options == {"samples_per_label": 32}
    sts12 = get_dataset("STS12", shared_data).load()["data"]
    assert len(sts12[0]) == 3108


def test_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("E5KIT_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    with pytest.raises(FileNotFoundError):
        get_dataset("scifact").load()
    monkeypatch.setenv("E5KIT_DATA_DIR", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="data directory not found"):
        get_dataset("scifact")


def test_user_datasets(tmp_path):
    beir = make_beir(tmp_path / "mine", n_docs=5, n_queries=2)
    spec = get_dataset(f"retrieval:{beir}")
    assert spec.name == "mine" and spec.task_type == "retrieval" and len(spec.load()["data"].query_ids) == 2
    test = make_labelled(tmp_path / "topics.test.jsonl.gz")
    make_labelled(tmp_path / "topics.train.jsonl.gz")
    cls = get_dataset(f"classification:{test}")
    assert cls.name == "topics" and cls.train_path.endswith("topics.train.jsonl.gz")
    assert len(cls.load()["train"][0]) == 60
    folder = tmp_path / "clf"
    make_labelled(folder / "train.jsonl")
    make_labelled(folder / "test.jsonl")
    assert user_dataset(folder, "classification").train_path.endswith("train.jsonl")
    pairs = make_pairs(tmp_path / "para.jsonl.gz", target="label")
    assert user_dataset(pairs, "pair_classification", name="para").name == "para"


@pytest.mark.parametrize("spec", ["", "   ", "nosuchset", "translation:/tmp", "sts"])
def test_unknown_dataset_names(spec):
    with pytest.raises(ValueError):
        get_dataset(spec)


def test_user_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        get_dataset(f"sts:{tmp_path / 'absent.jsonl'}")
    lone = make_labelled(tmp_path / "lone.test.jsonl.gz")
    with pytest.raises(FileNotFoundError, match="no training file"):
        user_dataset(lone, "classification")
    with pytest.raises(ValueError, match="BEIR folder"):
        user_dataset(lone, "retrieval")
    with pytest.raises(ValueError, match="unknown task type"):
        user_dataset(lone, "ranking")
