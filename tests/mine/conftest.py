"""A tiny BEIR folder with training judgements, its index (tiny E5 model, with BM25) and its pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.index.helpers import doc_text, write_corpus

N_DOCS = 40


def write_beir(root: Path) -> Path:
    """corpus d0..d39 (d39 a copy of d1's text), queries q0..q11, qrels/train.tsv (q0 has two positives,
    one line names a missing document, one a missing query) and qrels/test.tsv."""
    root.mkdir(parents=True, exist_ok=True)
    write_corpus(root / "corpus.jsonl", N_DOCS - 1)
    with open(root / "corpus.jsonl", "a", encoding="utf-8") as fh:  # d39: the same text as d1, another id
        fh.write(json.dumps({"_id": f"d{N_DOCS - 1}", "title": "title 1", "text": doc_text(1)}) + "\n")
    with open(root / "queries.jsonl", "w", encoding="utf-8") as fh:
        for i in range(12):
            fh.write(json.dumps({"_id": f"q{i}", "text": doc_text(i).rsplit(" ", 1)[0]}) + "\n")
    (root / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"] + [f"q{i}\td{i}\t1" for i in range(10)]
    lines += ["q0\td10\t1", "q3\tmissing-doc\t1", "q-missing\td5\t1", "q4\td20\t0"]
    (root / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq11\td11\t1\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def beir_dir(tmp_path_factory) -> Path:
    return write_beir(tmp_path_factory.mktemp("mine") / "tinybeir")


@pytest.fixture(scope="session")
def train_pairs(beir_dir, tmp_path_factory) -> Path:
    from e5kit.data.build import build_pairs

    out = tmp_path_factory.mktemp("mine-pairs") / "pairs"
    build_pairs("beir", [beir_dir], out, options={"split": "train"}, show_progress=False)
    return out


@pytest.fixture(scope="session")
def mine_index(beir_dir, tiny_e5, tmp_path_factory):
    """(DenseIndex with a BM25 part, its E5 model) over the tiny corpus."""
    from e5kit import E5
    from e5kit.data.mine import prepare_index

    model = E5(str(tiny_e5))
    folder = tmp_path_factory.mktemp("mine-index") / "index"
    return prepare_index(folder, [str(beir_dir)], model, method="rrf", show_progress=False), model
