"""The `e5kit index ...` and `e5kit search` commands, run in-process."""

import json

import pytest

from e5kit.cli import main

from .helpers import write_corpus


@pytest.fixture()
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus.jsonl", 30)


def run(capsys, *argv):
    code = main(["-q", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_search_command_text_and_json(capsys, corpus, tiny_e5):
    code, out, err = run(
        capsys, "search", corpus, "--query", "cell water", "-q", "fire", "-k", "3", "--model", tiny_e5, "--no-progress"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "query: cell water" and lines[1].split()[0] == "1" and "title" in lines[1]
    code, out, _ = run(capsys, "search", corpus, "-q", "cell water", "-k", "2", "--model", tiny_e5, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["query"] for r in rows] == ["cell water"]
    assert [h["rank"] for h in rows[0]["hits"]] == [1, 2] and rows[0]["hits"][0]["text"].startswith("title")


def test_index_build_search_check_ann_bm25(capsys, tmp_path, corpus, tiny_e5):
    ix = tmp_path / "ix"
    assert (
        run(capsys, "index", "build", corpus, "-o", ix, "--model", tiny_e5, "--shard-size", "8", "--quantize", "int8")[
            0
        ]
        == 0
    )
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"_id": "q1", "text": "cell"}\n{"_id": "q2", "text": "dark water"}\n')
    code, out, err = run(capsys, "index", "search", ix, "--queries", queries, "-k", "4", "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["query_id"] for r in rows] == ["q1", "q2"] and len(rows[1]["hits"]) == 4
    assert run(capsys, "index", "ann", ix, "--kind", "hnsw", "--M", "8")[0] == 0
    code, out, _ = run(capsys, "index", "search", ix, "-q", "cell", "-k", "4", "--ann", "hnsw", "--json")
    assert code == 0 and len(json.loads(out)["hits"]) == 4
    code, out, _ = run(capsys, "index", "check", ix, "--sample", "10", "--json")
    methods = {r["method"]: r for r in json.loads(out)}
    assert code == 0 and set(methods) == {"exact-float", "exact-int8", "faiss-hnsw"}
    assert run(capsys, "index", "bm25", ix)[0] == 0
    code, out, _ = run(capsys, "index", "search", ix, "-q", "cell water", "--method", "rrf", "-k", "3")
    assert code == 0 and out.startswith("query: cell water") and len(out.strip().splitlines()) == 4
    assert run(capsys, "index", "merge", ix)[0] == 0


def test_sharded_cli_build(capsys, tmp_path, corpus, tiny_e5):
    ix = tmp_path / "ix"
    assert (
        run(capsys, "index", "build", corpus, "-o", ix, "--model", tiny_e5, "--shard-size", "8", "--shard", "0/2")[0]
        == 0
    )
    code, _, err = run(capsys, "index", "merge", ix)
    assert code == 1 and "incomplete" in err and len(err.strip().splitlines()) == 1
    assert run(capsys, "index", "build", corpus, "-o", ix, "--shard", "1/2")[0] == 0  # model from the index
    assert run(capsys, "index", "merge", ix)[0] == 0


def test_errors_are_one_line(capsys, tmp_path, corpus, tiny_e5):
    code, _, err = run(capsys, "index", "search", tmp_path / "nope", "-q", "x")
    assert code == 1 and "not an e5kit index" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "search", corpus, "--model", tiny_e5)
    assert code == 1 and "no query given" in err
    code, _, err = run(capsys, "search", corpus, "-q", "x", "-k", "0", "--model", tiny_e5)
    assert code == 1 and "-k must be" in err
    with pytest.raises(SystemExit) as info:
        main(["index", "build", str(corpus)])  # no -o: usage error
    assert info.value.code == 2
    ix = tmp_path / "ix"
    assert run(capsys, "index", "build", corpus, "-o", ix, "--model", tiny_e5)[0] == 0
    code, _, err = run(capsys, "index", "ann", ix, "--kind", "hnsw", "--nlist", "4")
    assert code == 1 and "do not apply" in err


# --- issue 13 ---


@pytest.fixture()
def built(tmp_path, corpus, tiny_e5, capsys):
    ix = tmp_path / "ix"
    code, _, err = run(capsys, "index", "build", corpus, "-o", ix, "--model", tiny_e5, "--shard-size", "8",
                       "--no-progress")
    assert code == 0, err
    return ix


@pytest.mark.parametrize(
    "argv, match",
    [
        (("--kind", "hnsw", "--M", "0"), r"M=0 .*2\.\.512"),
        (("--kind", "hnsw", "--M", "-1"), r"M=-1 .*2\.\.512"),
        (("--kind", "hnsw", "--ef-construction", "0"), r"ef_construction=0"),
        (("--kind", "ivfpq", "--nprobe", "0"), r"nprobe=0 .*1\.\."),
        (("--kind", "ivfpq", "--nlist", "31"), r"nlist=31 .*1\.\.30"),
        (("--kind", "ivfpq", "--train-size", "0"), r"train_size=0 .*1\.\."),
        (("--kind", "ivfpq", "--nbits", "20"), r"nbits=20 .*1\.\."),
    ],
)
def test_i13_05_07_13_ann_command_checks_every_parameter(capsys, built, argv, match):
    code, _, err = run(capsys, "index", "ann", built, *argv)
    assert code == 1 and len(err.strip().splitlines()) == 1
    import re

    assert re.search(match, err), err


@pytest.mark.parametrize(
    "argv, match",
    [
        (("--ann", "ivfpq", "--nprobe", "0"), r"nprobe=0"),
        (("--nprobe", "4"), r"--nprobe .*--ann ivfpq"),
        (("--ann", "hnsw", "--nprobe", "4"), r"--nprobe .*--ann ivfpq"),
        (("--ann", "hnsw", "--ef-search", "0"), r"ef_search=0"),
        (("--ann", "hnsw",), r"no hnsw index"),
        (("--vectors", "int8",), r"no int8 copy"),
        (("--method", "rrf",), r"no BM25 index"),
        (("--method", "rrf", "--alpha", "2"), r"alpha"),
    ],
)
def test_i13_07_search_options_checked_before_the_model_loads(capsys, built, monkeypatch, argv, match):
    import e5kit.index.search as search_mod

    monkeypatch.setattr(search_mod, "index_model", lambda *a, **k: pytest.fail("model loaded before the check"))
    code, _, err = run(capsys, "index", "search", built, "-q", "cell", *argv)
    import re

    assert code == 1 and re.search(match, err), err


def test_i13_10_search_says_who_verifies_checksums(capsys, built):
    from e5kit.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices["index"]._subparsers._group_actions[0].choices
    assert "index check" in sub["search"].format_help() and "--verify" in sub["search"].format_help()
    vec = built / "shards" / "00001.f32.npy"
    data = bytearray(vec.read_bytes())
    data[-1] ^= 0x01  # a small change in one value: only the checksum sees it
    vec.write_bytes(bytes(data))
    code, _, err = run(capsys, "index", "search", built, "-q", "cell", "--verify")
    assert code == 1 and "checksum" in err and "00001" in err


def test_i13_17_search_accepts_the_skip_empty_it_suggests(capsys, tmp_path, tiny_e5):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "a", "text": "cell"}\n{"_id": "b", "text": ""}\n')
    code, _, err = run(capsys, "search", path, "-q", "cell", "--model", tiny_e5)
    assert code == 1 and "--skip-empty" in err
    code, out, err = run(capsys, "search", path, "-q", "cell", "--model", tiny_e5, "--skip-empty", "--json")
    assert code == 0, err
    assert [h["id"] for h in json.loads(out)["hits"]] == ["a"]


def test_i13_19_cli_max_length_mismatch_names_the_flag(capsys, built):
    code, _, err = run(capsys, "index", "search", built, "-q", "cell", "--max-length", "16")
    assert code == 1 and "--max-length 64" in err and "'query: ' vs 'query: '" not in err


def test_i13_overwrite_flags_for_ann_and_bm25(capsys, built):
    assert run(capsys, "index", "ann", built, "--kind", "hnsw", "--M", "4", "--ef-construction", "8")[0] == 0
    code, _, err = run(capsys, "index", "ann", built, "--kind", "hnsw", "--M", "8")
    assert code == 1 and "--overwrite" in err
    assert run(capsys, "index", "ann", built, "--kind", "hnsw", "--M", "8", "--overwrite")[0] == 0
    assert run(capsys, "index", "bm25", built)[0] == 0
    code, _, err = run(capsys, "index", "bm25", built, "--k1", "1.2")
    assert code == 1 and "--overwrite" in err
    assert run(capsys, "index", "bm25", built, "--k1", "1.2", "--overwrite")[0] == 0
    code, out, _ = run(capsys, "index", "search", built, "-q", "zzzz qqqq", "--method", "bm25", "--json")
    assert code == 0 and json.loads(out)["hits"] == []
