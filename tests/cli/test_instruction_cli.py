"""--instruction on every command that embeds queries (encode, similarity, search, index search, eval): the
instruct model's query prompt carries it; other models and other roles refuse it clearly, before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest

from e5kit import E5
from e5kit.cli import main

TASK = "Find the passage about the element"


@pytest.fixture(scope="module")
def instruct(tiny_instruct):
    return tiny_instruct


@pytest.fixture(scope="module")
def model(instruct):
    return E5(instruct)


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    docs = ["water is wet", "fire is hot", "earth is big", "light and dark", "the small cell"]
    path.write_text("".join(json.dumps({"_id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(docs)))
    return path


def test_encode_puts_the_instruction_into_the_query_prompt(instruct, model, tmp_path):
    src = tmp_path / "q.txt"
    src.write_text("what is water\nhow hot is fire\n")
    out, plain = tmp_path / "with.npy", tmp_path / "plain.npy"
    args = ["encode", str(src), "--role", "query", "--model", str(instruct)]
    assert main([*args, "-o", str(out), "--instruction", TASK]) == 0
    assert main([*args, "-o", str(plain)]) == 0
    texts = ["what is water", "how hot is fire"]
    np.testing.assert_allclose(np.load(out), model.encode_queries(texts, instruction=TASK), atol=1e-6)
    assert not np.allclose(np.load(out), np.load(plain), atol=1e-4)  # the default instruction differs


def test_encode_refuses_an_instruction_for_other_roles_before_loading(tmp_path, capsys):
    src = tmp_path / "q.txt"
    src.write_text("water\n")
    rc = main(["encode", str(src), "-o", str(tmp_path / "o.npy"), "--role", "passage", "--instruction", TASK,
               "--model", str(tmp_path / "no-such-model")])
    err = capsys.readouterr().err
    assert rc == 1 and "role 'query'" in err and "no-such-model" not in err, err
    assert not (tmp_path / "o.npy").exists()


def test_similarity_uses_it(instruct, model, capsys):
    assert main(["similarity", "-Q", "what is water", "-P", "water is wet", "-P", "fire is hot", "--json",
                 "--instruction", TASK, "--model", str(instruct)]) == 0
    scores = np.array(json.loads(capsys.readouterr().out)["scores"])
    want = model.similarity(model.encode_queries(["what is water"], instruction=TASK),
                            model.encode_passages(["water is wet", "fire is hot"])) * 100
    np.testing.assert_allclose(scores, want, atol=1e-3)


def test_corpus_search_uses_it(instruct, model, corpus, capsys):
    assert main(["search", str(corpus), "-q", "what is water", "--json", "-k", "5", "--instruction", TASK,
                 "--model", str(instruct), "--no-progress"]) == 0
    hits = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["hits"]
    docs = [json.loads(line)["text"] for line in corpus.read_text().splitlines()]
    scores = (model.encode_passages(docs) @ model.encode_queries(["what is water"], instruction=TASK)[0])
    for hit in hits:
        assert hit["score"] == pytest.approx(float(scores[int(hit["id"][1:])]), abs=1e-5)


def test_a_model_without_instruct_prompts_refuses_it(tiny_e5, corpus, capsys):
    for argv in (["similarity", "-Q", "water", "-P", "fire"],
                 ["search", str(corpus), "-q", "water", "--no-progress"]):
        assert main([*argv, "--instruction", TASK, "--model", str(tiny_e5)]) == 1
        assert "no instruct prompts" in capsys.readouterr().err


def test_index_search_uses_it_dense_and_hybrid(instruct, model, corpus, tmp_path, capsys):
    from e5kit.index.build import build_index

    folder = tmp_path / "ix"
    build_index(corpus, folder, model=model, show_progress=False)
    assert main(["index", "search", str(folder), "-q", "what is water", "--json", "-k", "5",
                 "--instruction", TASK, "--no-progress"]) == 0
    hits = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["hits"]
    docs = [json.loads(line)["text"] for line in corpus.read_text().splitlines()]
    scores = (model.encode_passages(docs) @ model.encode_queries(["what is water"], instruction=TASK)[0])
    assert len(hits) == 5
    for hit in hits:
        assert hit["score"] == pytest.approx(float(scores[int(hit["id"][1:])]), abs=1e-5)
    pytest.importorskip("bm25s", reason="hybrid search needs the bm25s package")
    assert main(["index", "bm25", str(folder)]) == 0
    assert main(["index", "search", str(folder), "-q", "what is water", "--json", "--method", "rrf",
                 "--instruction", TASK, "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["hits"]
