import json
from collections import Counter

import pytest

from e5kit.errors import InputFormatError
from e5kit.train.data import PairStream, expand_paths, pair_from_record
from tests.train.helpers import write_pairs


def _stream(paths, **kw):
    kw.setdefault("buffer_size", 16)
    return PairStream([(f"s{i}", [str(p)], w) for i, (p, w) in enumerate(paths)], **kw)


def test_reads_jsonl_gz_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    gz = write_pairs(tmp_path / "a.jsonl.gz", 10, source="web")
    rows = [{"query": f"q{i}", "passage": f"p{i}", "negatives": [f"n{i}"]} for i in range(10)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "b.parquet")
    pairs = _stream([(gz, 1.0), (tmp_path / "b.parquet", 1.0)], seed=1).take(40)
    assert {p.source for p in pairs} == {"web", "s1"}
    assert any(p.negatives == [p.query.replace("q", "n")] for p in pairs if p.source == "s1")


def test_sources_mixed_by_weight(tmp_path):
    a = write_pairs(tmp_path / "a.jsonl", 50, seed=1, source="a")
    b = write_pairs(tmp_path / "b.jsonl", 50, seed=2, source="b")
    counts = Counter(p.source for p in _stream([(a, 3.0), (b, 1.0)], seed=0, buffer_size=1).take(2000))
    assert 0.70 < counts["a"] / 2000 < 0.80


def test_seeded_shuffle_is_reproducible_and_shuffles(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"query": f"q{i}", "passage": f"p{i}"}) + "\n" for i in range(100)))
    first = [p.query for p in _stream([(path, 1)], seed=5, buffer_size=32).take(100)]
    again = [p.query for p in _stream([(path, 1)], seed=5, buffer_size=32).take(100)]
    other = [p.query for p in _stream([(path, 1)], seed=6, buffer_size=32).take(100)]
    assert first == again and first != other
    # output k is drawn after k + 32 reads, so the first 68 outputs are distinct pairs of the first pass
    assert len(set(first[:68])) == 68
    assert first != [f"q{i}" for i in range(100)]


def test_state_resumes_exactly(tmp_path):
    a = write_pairs(tmp_path / "a.jsonl", 30, seed=1, bad_lines=2)
    b = write_pairs(tmp_path / "b.jsonl.gz", 20, seed=2)
    kw = dict(seed=3, buffer_size=8, max_bad_fraction=0.5)
    s = _stream([(a, 1.0), (b, 2.0)], **kw)
    s.take(37)
    state = json.loads(json.dumps(s.state()))  # survives serialisation
    rest = s.take(60)
    resumed = _stream([(a, 1.0), (b, 2.0)], **kw)
    resumed.load_state(state)
    assert resumed.take(60) == rest
    assert resumed.bad.state() == s.bad.state()


def test_malformed_records_counted_logged_and_skipped(tmp_path):
    path = write_pairs(tmp_path / "p.jsonl", 100, bad_lines=2)
    log = tmp_path / "bad.log"
    s = PairStream([("s", [str(path)], 1.0)], buffer_size=4, max_bad_fraction=0.05, bad_log=log)
    pairs = s.take(150)
    assert all(p.query and p.passage for p in pairs)
    assert s.bad.bad >= 2
    lines = log.read_text().splitlines()
    assert any("malformed JSON line" in line and f"{path}:" in line for line in lines)
    # issue 13 item 12: every skip names the file and line, whatever made the record bad
    numbers = [n for n, text in enumerate(path.read_text().splitlines(), start=1) if '"query": 3' in text]
    assert any(line.startswith(f"{path}:{numbers[0]}\t") and "must be a string" in line for line in lines)


def test_too_many_malformed_records_fail(tmp_path):
    path = write_pairs(tmp_path / "p.jsonl", 20, bad_lines=10)
    with pytest.raises(InputFormatError, match="max_bad_fraction"):
        PairStream([("s", [str(path)], 1.0)], buffer_size=4, max_bad_fraction=0.1).take(50)


def test_file_with_no_valid_pair_fails(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"query": 1}\n')
    with pytest.raises(InputFormatError):
        PairStream([("s", [str(path)], 1.0)], buffer_size=2, max_bad_fraction=1.0).take(1)


@pytest.mark.parametrize("obj, match", [
    ({"query": "q"}, "'passage' must be a string"), ({"query": "q", "passage": 5}, "'passage' must be a string"),
    ({"query": " ", "passage": "p"}, "empty"), ({"query": "q", "passage": "p", "negatives": "n"}, "list"),
    ({"query": "q", "passage": "p", "negatives": ["a", 3]}, "list of strings"),
    ([1, 2], "expected a JSON object"),
])
def test_pair_from_record_rejects(obj, match):
    with pytest.raises(ValueError, match=match):
        pair_from_record(obj, "s")


def test_bad_paths_and_arguments(tmp_path):
    with pytest.raises(InputFormatError, match="matches no file"):
        expand_paths([str(tmp_path / "none*.jsonl")])
    (tmp_path / "x.txt").write_text("hello\n")
    with pytest.raises(InputFormatError, match="pair shards must be"):
        expand_paths([str(tmp_path / "x.txt")])
    with pytest.raises(InputFormatError, match="no pair sources"):
        PairStream([])
    good = write_pairs(tmp_path / "g.jsonl", 3)
    with pytest.raises(ValueError, match="weights"):
        PairStream([("s", [str(good)], 0.0)])
    with pytest.raises(ValueError, match="buffer_size"):
        PairStream([("s", [str(good)], 1.0)], buffer_size=0)
    assert expand_paths([str(tmp_path)]) == [str(good)]  # a folder gives its shard files
