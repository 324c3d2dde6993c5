"""BEIR folders with training judgements: `corpus.jsonl[.gz]`, `queries.jsonl[.gz]`, `qrels/<split>.tsv`
(e.g. SciFact, FiQA, NFCorpus, MS MARCO in BEIR form). One pair per positive judgement: (query text,
title + " " + text of the judged document); `meta` keeps `query_id` and `doc_id`, so `e5kit mine` can
tell every judged positive of a query from a mined negative. Options: `split` (default "train"; never the
split you evaluate on), `min_score` (default 1)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from e5kit.data.labeled import MissingIds, keep_texts, read_qrels
from e5kit.data.pairs import Pair
from e5kit.errors import InputFormatError
from e5kit.io.records import iter_text_records

NAME = "beir"
_JSONL = (".jsonl", ".jsonl.gz")


def expand_folder(folder: Path) -> list[Path]:
    """The corpus and queries files and every qrels TSV of a BEIR folder."""
    files = [f for f in sorted(folder.iterdir())
             if f.name.startswith(("corpus", "queries")) and f.name.endswith(_JSONL)]
    return files + sorted((folder / "qrels").glob("*.tsv"))


def _pick(files: Sequence[Path], split: str) -> tuple[Path, Path, Path]:
    """(corpus, queries, qrels of `split`) among the input files, or an error naming what is missing."""
    corpus = [f for f in files if f.name.startswith("corpus") and f.name.endswith(_JSONL)]
    queries = [f for f in files if f.name.startswith("queries") and f.name.endswith(_JSONL)]
    qrels = [f for f in files if f.suffix == ".tsv" and f.stem == split]
    splits = sorted({f.stem for f in files if f.suffix == ".tsv"})
    if len(corpus) != 1 or len(queries) != 1:
        raise InputFormatError(f"beir: need one corpus.jsonl[.gz] and one queries.jsonl[.gz], got "
                               f"{len(corpus)} and {len(queries)} (give the BEIR folder)")
    if len(qrels) != 1:
        raise InputFormatError(f"beir: no qrels/{split}.tsv among the inputs (splits found: "
                               f"{', '.join(splits) or 'none'}); choose one with --option split=NAME")
    return corpus[0], queries[0], qrels[0]


def iter_inputs(paths: Sequence[Path], *, split: str = "train", min_score: int = 1) -> Iterator[Pair]:
    corpus_file, queries_file, qrels_file = _pick([Path(p) for p in paths], split)
    qrels = read_qrels(qrels_file, min_score=min_score)
    queries = keep_texts(iter_text_records(queries_file, title_field=None), set(qrels.positives))
    docs = keep_texts(iter_text_records(corpus_file), qrels.doc_ids)
    dataset = corpus_file.parent.name
    missing = MissingIds(f"beir {dataset} {split}")
    for qid, doc_ids in qrels.positives.items():
        if qid not in queries:
            missing.add("query", qid)
            continue
        for did in doc_ids:
            if did not in docs:
                missing.add("document", did)
                continue
            yield Pair(queries[qid], docs[did], NAME, {"dataset": dataset, "split": split, "query_id": qid,
                                                        "doc_id": did})
    missing.report()
