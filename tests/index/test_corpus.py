import gzip
import json

import pytest

from e5kit.errors import InputFormatError
from e5kit.index.corpus import CorpusFields, files_digest, iter_corpus, records_digest, resolve_corpus

from .helpers import write_corpus


def test_resolve_beir_folder_and_files(tmp_path):
    write_corpus(tmp_path / "corpus.jsonl", 3)
    (tmp_path / "queries.jsonl").write_text('{"_id": "q", "text": "x"}\n')
    assert resolve_corpus(tmp_path) == [tmp_path / "corpus.jsonl"]  # BEIR: only the corpus, not the queries
    assert resolve_corpus([tmp_path / "corpus.jsonl", tmp_path / "queries.jsonl"])[1].name == "queries.jsonl"


@pytest.mark.parametrize("bad", [[], "missing.jsonl", "notes.csv"])
def test_resolve_bad(tmp_path, bad):
    (tmp_path / "notes.csv").write_text("a,b\n")
    with pytest.raises((ValueError, FileNotFoundError)):
        resolve_corpus(bad if bad == [] else tmp_path / bad)


def test_records_join_title_and_keep_order(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps({"_id": 7, "title": "T", "text": "body"}) + "\n")
        fh.write(json.dumps({"id": "x", "text": "only text"}) + "\n")
    recs = list(iter_corpus([path]))
    assert [(r.id, r.text) for r in recs] == [("7", "T body"), ("x", "only text")]


def test_txt_ids_are_line_numbers(tmp_path):
    (tmp_path / "c.txt").write_text("alpha\nbeta\n")
    assert [(r.id, r.text) for r in iter_corpus([tmp_path / "c.txt"])] == [("0", "alpha"), ("1", "beta")]


@pytest.mark.parametrize(
    "line, match",
    [
        ('{"title": "t", "text": "x"}', "no usable '_id'"),
        ('{"_id": "", "text": "x"}', "no usable '_id'"),
        ('{"_id": ["a"], "text": "x"}', "no usable '_id'"),
        ('{"_id": "a", "title": "t"}', "no 'text' field"),
        ('{"_id": "a", "text": 5}', "must be str"),
        ('{"_id": "a", "text": "  "}', "empty text"),
        ("{not json", "malformed JSON line"),
    ],
)
def test_bad_records_name_file_and_record(tmp_path, line, match):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "ok", "text": "fine"}\n' + line + "\n")
    with pytest.raises(InputFormatError, match=match) as info:
        list(iter_corpus([path]))
    assert "c.jsonl" in str(info.value)


def test_skip_empty_reports_ids(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "a", "text": ""}\n{"_id": "b", "text": "x"}\n')
    skipped: list[str] = []
    assert [r.id for r in iter_corpus([path], skip_empty=True, skipped=skipped)] == ["b"]
    assert skipped == ["a"]


def test_custom_fields_and_parquet_without_id(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["x", "y"]}), tmp_path / "c.parquet")
    with pytest.raises(InputFormatError, match="no '_id'"):
        list(iter_corpus([tmp_path / "c.parquet"], fields=CorpusFields(text="body")))
    pq.write_table(pa.table({"pid": ["p1", "p2"], "body": ["x", "y"]}), tmp_path / "d.parquet")
    recs = list(iter_corpus([tmp_path / "d.parquet"], fields=CorpusFields(id="pid", title=None, text="body")))
    assert [(r.id, r.text) for r in recs] == [("p1", "x"), ("p2", "y")]


def test_digests_change_with_content(tmp_path):
    a = write_corpus(tmp_path / "a.jsonl", 3)
    recs = list(iter_corpus([a]))
    assert records_digest(recs) != records_digest(recs[:2])
    before = files_digest([a])
    write_corpus(a, 3, start=1)
    assert files_digest([a]) != before
