"""Pair record, shard writer (rolling, atomic, resumable, both formats) and reader."""

from __future__ import annotations

import gzip
import json

import pytest

from e5kit.data import Pair, PairWriter, iter_pairs, list_shards, normalize_text, pair_id
from e5kit.data.shards import read_manifest
from e5kit.errors import E5kitError, InputFormatError


def make(i: int, source: str = "s") -> Pair:
    return Pair(f"query number {i}", f"passage text number {i} " * 5, source, {"i": i})


def test_pair_id_is_a_stable_content_hash():
    a, b = Pair("q", "p", "x"), Pair("q", "p", "y", {"m": 1})
    assert a.id == b.id == pair_id("q", "p") and len(a.id) == 32
    assert Pair("q", "p2", "x").id != a.id and Pair("qp", "", "x").id != Pair("q", "p", "x").id
    assert normalize_text("  Hello,   WORLD!\n") == "hello world"


@pytest.mark.parametrize("obj, match", [([1], "expected a JSON object"), ({"query": "q", "passage": 3, "source": "s"},
                                        "'passage' must be a string"),
                                        ({"query": "q", "passage": "p", "source": "s", "meta": "x"}, "'meta'")])
def test_pair_from_bad_dict(obj, match):
    with pytest.raises(InputFormatError, match=match):
        Pair.from_dict(obj)


@pytest.mark.parametrize("fmt", ["jsonl.gz", "parquet"])
def test_writer_rolls_and_round_trips(tmp_path, fmt):
    pairs = [make(i) for i in range(3000)]
    pairs[5].negatives = ["a hard negative"]
    with PairWriter(tmp_path, fmt=fmt, shard_bytes=8192) as w:
        for p in pairs:
            w.write(p)
    shards = list_shards(tmp_path)
    assert len(shards) > 2 and all(s.name.endswith(fmt) for s in shards)
    assert not list(tmp_path.glob("*.tmp"))
    back = list(iter_pairs(tmp_path))
    assert [p.to_dict() for p in back] == [p.to_dict() for p in pairs]
    m = read_manifest(tmp_path)
    assert m["done"] and m["pairs"] == 3000 and sum(s["pairs"] for s in m["shards"]) == 3000


def test_jsonl_records_have_exact_field_names(tmp_path):
    with PairWriter(tmp_path) as w:
        w.write(Pair("q", "p", "src", {"k": "v"}))
        w.write(Pair("q2", "p2", "src"))
    lines = gzip.open(tmp_path / "pairs-00000.jsonl.gz", "rt").read().splitlines()
    assert json.loads(lines[0]) == {"id": pair_id("q", "p"), "query": "q", "passage": "p", "source": "src",
                                    "meta": {"k": "v"}}
    assert set(json.loads(lines[1])) == {"id", "query", "passage", "source"}


def test_interrupted_writer_resumes_from_finished_shards(tmp_path):
    w = PairWriter(tmp_path, shard_bytes=4096)
    with pytest.raises(RuntimeError):
        with w:
            for i in range(2000):
                w.write(make(i))
                if i == 1500:
                    raise RuntimeError("killed")
    assert not list(tmp_path.glob("*.tmp"))
    m = read_manifest(tmp_path)
    assert not m["done"] and 0 < m["pairs"] <= 1500
    again = PairWriter(tmp_path, shard_bytes=4096)
    assert again.resume_from == m["pairs"] and not again.complete
    with again:
        for i in range(again.resume_from, 2000):
            again.write(make(i))
    assert [p.query for p in iter_pairs(tmp_path)] == [make(i).query for i in range(2000)]
    fresh = PairWriter(tmp_path, resume=False)
    assert fresh.resume_from == 0 and not list(tmp_path.glob("pairs-*.jsonl.gz"))


def test_writer_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="fmt must be one of"):
        PairWriter(tmp_path, fmt="csv")
    with pytest.raises(ValueError, match="shard_bytes"):
        PairWriter(tmp_path, shard_bytes=10)
    with PairWriter(tmp_path / "a", fmt="parquet") as w:
        w.write(make(1))
    with pytest.raises(E5kitError, match="parquet"):
        PairWriter(tmp_path / "a", fmt="jsonl.gz")


def test_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        list_shards(tmp_path / "missing")
    with pytest.raises(E5kitError, match="no pair shards"):
        list_shards(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "passage": "p", "source": "s"}\n{"query": 1}\n')
    with pytest.raises(InputFormatError, match=r"bad.jsonl:2: field 'query' must be a string"):
        list(iter_pairs(bad))


def test_reader_with_a_policy_skips_counts_and_logs_bad_records(tmp_path):
    from e5kit.io.bad_records import BadRecords

    path = tmp_path / "pairs-00000.jsonl"
    path.write_text('{"query": "q", "passage": "p", "source": "s"}\n{oops\n{"query": 1}\n'
                    '{"query": "q2", "passage": "p2", "source": "s"}\n')
    bad = BadRecords(0.5, tmp_path / "bad.log")
    assert [p.query for p in iter_pairs(tmp_path, bad=bad)] == ["q", "q2"]
    assert (bad.seen, bad.bad) == (4, 2)
    assert [line.split("\t")[0] for line in (tmp_path / "bad.log").read_text().splitlines()] == [
        f"{path}:2", f"{path}:3"]


def test_a_second_writer_of_the_same_shards_is_refused(tmp_path):
    """Issue 13 item 30: two writers of one folder and prefix shared a .tmp name; a lock now refuses the second."""
    first = PairWriter(tmp_path)
    first.write(make(1))
    with pytest.raises(E5kitError, match=r"another process is writing 'pairs' shards in .*pid \d+"):
        PairWriter(tmp_path)
    with PairWriter(tmp_path, prefix="other") as w:  # another prefix (a --shard part) is free
        w.write(make(2))
    first.close()
    assert read_manifest(tmp_path)["pairs"] == 1
    with PairWriter(tmp_path, resume=False) as again:  # released on close
        again.write(make(3))


def test_interleave_mixes_by_weight_and_keeps_every_item():
    from e5kit.data.shards import interleave

    out = list(interleave([iter("aaaaaa"), iter("bb"), iter("")], [3.0, 1.0, 5.0]))
    assert sorted(out) == sorted("aaaaaabb") and out[:4].count("b") == 1
    assert list(interleave([iter([1, 2]), iter([3])], [1, 100])) == [3, 1, 2]  # an early-exhausted stream drops out
    assert list(interleave([], [])) == []
    with pytest.raises(ValueError, match="one weight > 0 per stream"):
        list(interleave([iter("a")], [0]))
    with pytest.raises(ValueError, match="one weight > 0 per stream"):
        list(interleave([iter("a"), iter("b")], [1]))
