"""Record readers: formats, ids, title joining, and malformed input reported with its line."""

from __future__ import annotations

import gzip
import json

import pytest

from e5kit.errors import InputFormatError
from e5kit.io.records import detect_format, iter_jsonl, iter_text_records


def test_txt_one_text_per_line(tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("first\nsecond line\r\n\nlast", encoding="utf-8")
    recs = list(iter_text_records(f))
    assert [r.text for r in recs] == ["first", "second line", "", "last"]
    assert [r.id for r in recs] == ["0", "1", "2", "3"]


def test_jsonl_gz_with_titles_and_ids(tmp_path):
    f = tmp_path / "corpus.jsonl.gz"
    with gzip.open(f, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"_id": "a", "title": "T", "text": "body"}) + "\n\n")
        fh.write(json.dumps({"id": 7, "text": "no title"}) + "\n")
    recs = list(iter_text_records(f))
    assert [(r.id, r.text) for r in recs] == [("a", "T body"), ("7", "no title")]
    assert [r.text for r in iter_text_records(f, title_field=None)] == ["body", "no title"]


def test_custom_fields(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text(json.dumps({"key": "k1", "content": "hello"}) + "\n")
    assert list(iter_text_records(f, text_field="content", id_field="key"))[0].id == "k1"


@pytest.mark.parametrize("body, msg", [
    ('{"text": "ok"}\n{"text": broken\n', r"x.jsonl:2: malformed JSON line"),
    ('{"text": "ok"}\n[1, 2]\n', r"x.jsonl:2: malformed JSON line \(expected a JSON object, got list\)"),
])
def test_malformed_jsonl_names_the_line(tmp_path, body, msg):
    f = tmp_path / "x.jsonl"
    f.write_text(body)
    with pytest.raises(InputFormatError, match=msg):
        list(iter_jsonl(f))


def test_skip_bad_collects_reasons(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    bad: list = []
    assert [o["a"] for o in iter_jsonl(f, skip_bad=True, bad=bad)] == [1, 2]
    assert bad[0][0] == 2


@pytest.mark.parametrize("record, msg", [
    ({"title": "T"}, "no 'text' field"), ({"text": 5}, "must be strings"),
    ({"text": "x", "title": 3}, "must be strings"),
])
def test_bad_records(tmp_path, record, msg):
    f = tmp_path / "x.jsonl"
    f.write_text(json.dumps(record) + "\n")
    with pytest.raises(InputFormatError, match=msg):
        list(iter_text_records(f))


def test_not_gzip_and_not_utf8(tmp_path):
    f = tmp_path / "x.jsonl.gz"
    f.write_bytes(b"plain text, not gzip")
    with pytest.raises(InputFormatError, match="not readable"):
        list(iter_jsonl(f))
    g = tmp_path / "y.jsonl"
    g.write_bytes(b'{"text": "\xff\xfe"}\n')
    with pytest.raises(InputFormatError, match="not readable"):
        list(iter_jsonl(g))


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(iter_text_records(tmp_path / "nope.txt"))
    with pytest.raises(InputFormatError, match="cannot tell the format"):
        detect_format("data.csv")


def test_parquet_records(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    f = tmp_path / "x.parquet"
    pq.write_table(pa.table({"_id": ["a", "b"], "text": ["one", "two"]}), f)
    assert [(r.id, r.text) for r in iter_text_records(f)] == [("a", "one"), ("b", "two")]
