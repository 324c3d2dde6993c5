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
