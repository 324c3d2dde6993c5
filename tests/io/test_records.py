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
    with pytest.raises(InputFormatError, match="y.jsonl:1: not valid UTF-8"):
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


# -- issue 13: errors name the file and line; ids all from the file or all positional --

@pytest.mark.parametrize("name", ["x.txt", "x.txt.gz", "x.jsonl", "x.jsonl.gz"])
def test_issue13_non_utf8_names_file_and_line(tmp_path, name):
    f = tmp_path / name
    body = b'{"text": "one"}\n{"text": "two"}\n{"text": "caf\xe9"}\n' + b'{"text": "more"}\n' * 5000
    f.write_bytes(gzip.compress(body) if name.endswith(".gz") else body)
    with pytest.raises(InputFormatError, match=rf"{name}:3: not valid UTF-8"):
        list(iter_text_records(f))


def test_issue13_fake_parquet_names_the_file(tmp_path):
    pytest.importorskip("pyarrow")
    f = tmp_path / "fake.parquet"
    f.write_text("_id,text\n1,hello\n")
    with pytest.raises(InputFormatError, match=r"fake.parquet: not a readable Parquet file"):
        list(iter_text_records(f))
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        list(iter_text_records(tmp_path / "missing.parquet"))


@pytest.mark.parametrize("rows, where", [
    ([{"_id": "a", "text": "x"}, {"text": "y"}], "x.jsonl:2: no '_id' .* but earlier records have ids"),
    ([{"text": "x"}, {"text": "y"}, {"_id": "c", "text": "z"}], "x.jsonl:3: has an id, but earlier records have none"),
])
def test_issue13_mixed_real_and_positional_ids_refused(tmp_path, rows, where):
    f = tmp_path / "x.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputFormatError, match=where):
        list(iter_text_records(f))


def test_issue13_positional_ids_are_marked(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text('{"text": "x"}\n{"text": "y"}\n')
    recs = list(iter_text_records(f))
    assert [(r.id, r.positional) for r in recs] == [("0", True), ("1", True)]
    g = tmp_path / "y.jsonl"
    g.write_text('{"_id": "a", "text": "x"}\n')
    assert [r.positional for r in iter_text_records(g)] == [False]


@pytest.mark.parametrize("bad", [None, [1], {"a": 1}, 1.5, True])
def test_issue13_id_of_a_wrong_type_refused(tmp_path, bad):
    f = tmp_path / "x.jsonl"
    f.write_text(json.dumps({"_id": bad, "text": "x"}) + "\n")
    with pytest.raises(InputFormatError, match="x.jsonl:1: '_id' must be a string or an integer"):
        list(iter_text_records(f))


def test_issue13_utf8_bom_is_not_part_of_the_first_record(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_bytes(b'\xef\xbb\xbf{"_id": "a", "text": "x"}\n')
    assert [r.id for r in iter_text_records(f)] == ["a"]
    t = tmp_path / "x.txt"
    t.write_bytes(b"\xef\xbb\xbfhello\n")
    assert [r.text for r in iter_text_records(t)] == ["hello"]
