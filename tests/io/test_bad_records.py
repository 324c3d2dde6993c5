"""The one bad-record policy (issue 13, item 12): count, log with file and line, stop above a set fraction."""

from __future__ import annotations

import pytest

from e5kit.errors import InputFormatError
from e5kit.io.bad_records import DEFAULT_MAX_BAD_FRACTION, BadRecords, iter_records


def _file(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n\n{broken\n[1]\n{"a": 2}\n')
    return path


def test_bad_lines_are_counted_and_logged_with_file_and_line(tmp_path):
    path, log = _file(tmp_path), tmp_path / "bad.log"
    bad = BadRecords(0.5, log, what="test records")
    got = []
    for obj, where in iter_records(path, bad):
        bad.ok()
        got.append((obj, where))
    assert got == [({"a": 1}, f"{path}:1"), ({"a": 2}, f"{path}:5")]
    assert (bad.seen, bad.bad) == (4, 2)
    lines = log.read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == [f"{path}:3", f"{path}:4"]
    assert "malformed JSON line" in lines[0] and "expected a JSON object" in lines[1]
    assert bad.finish() == {"seen": 4, "bad": 2, "max_fraction": 0.5, "log": str(log)}


def test_more_bad_than_the_fraction_stops(tmp_path):
    bad = BadRecords(0.4, what="test records")
    for _ in iter_records(_file(tmp_path), bad):
        bad.ok()
    with pytest.raises(InputFormatError, match=r"2 of 4 test records were malformed.*max_bad_fraction=0.4"):
        bad.finish()


def test_the_fraction_is_judged_after_enough_records():
    bad = BadRecords(0.0)
    bad.skip("f:1", "broken")  # one bad record among few is not judged yet ...
    for _ in range(98):
        bad.ok()
    with pytest.raises(InputFormatError, match="2 of 100"):
        bad.skip("f:100", "broken")  # ... but is once 100 were seen


def test_strict_policy_stops_at_the_first_bad_record(tmp_path):
    with pytest.raises(InputFormatError, match=r"r.jsonl:3: malformed JSON line"):
        list(iter_records(_file(tmp_path)))
    with pytest.raises(InputFormatError, match="x.jsonl:7: field 'query' must be a string"):
        BadRecords.strict().skip("x.jsonl:7", "x.jsonl:7: field 'query' must be a string")


def test_skip_resumes_after_records_already_counted(tmp_path):
    bad = BadRecords(1.0)
    assert [w for _, w in iter_records(_file(tmp_path), bad, skip=1)] == [f"{tmp_path / 'r.jsonl'}:5"]
    assert bad.bad == 2  # the bad lines after the first record are new
    again = BadRecords(1.0)
    assert list(iter_records(_file(tmp_path), again, skip=2)) == [] and again.bad == 0


def test_parquet_rows_are_numbered(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"q": "a"}, {"q": "b"}]), tmp_path / "r.parquet")
    assert [w for _, w in iter_records(tmp_path / "r.parquet")] == [f"{tmp_path / 'r.parquet'}: row {i}"
                                                                     for i in (1, 2)]


def test_state_round_trips_and_counts_add_up():
    bad = BadRecords(0.5)
    bad.add(seen=10, bad=2)
    bad.ok()
    other = BadRecords(0.5)
    other.load_state(bad.state())
    assert other.state() == {"seen": 11, "bad": 2}


@pytest.mark.parametrize("value", [-0.1, 1.5, "0.1", True, float("nan")])
def test_bad_fraction_must_be_in_0_1(value):
    with pytest.raises((ValueError, TypeError), match="max_bad_fraction"):
        BadRecords(value)
    assert 0 < DEFAULT_MAX_BAD_FRACTION < 1
