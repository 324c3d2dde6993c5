"""MS MARCO passage ranking files: `collection.tsv` (pid, passage), `queries.train.tsv` (qid, query),
`qrels.train.tsv` (TREC: qid 0 pid 1), and optionally text triples (`triples.train.small.tsv`: query,
positive, negative). Files are told apart by name (collection / queries / qrels / triples; .gz allowed).

Without triples: one pair per positive judgement, `meta` with `query_id` and `doc_id`. With triples: the
triples are the pairs, and consecutive lines with the same (query, positive) become one pair with all their
negatives (MS MARCO's file is grouped that way); collection, queries and qrels are then not needed. Triples
of ids (qidpidtriples) are not read: give the qrels and mine negatives with `e5kit mine`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from e5kit.data.labeled import MissingIds, iter_tsv_texts, keep_texts, read_qrels
from e5kit.data.pairs import Pair
from e5kit.errors import InputFormatError
from e5kit.io.records import open_text

NAME = "msmarco"
ROLES = ("collection", "queries", "qrels", "triples")


def _role(path: Path) -> str:
    name = path.name.lower()
    for role in ("triples", "qrels", "collection", "queries"):  # "qidpidtriples" is triples, not queries
        if role in name:
            return role
    raise InputFormatError(f"msmarco: cannot tell what {path} is; its name must contain one of {', '.join(ROLES)}")


def iter_triples(path: Path, *, max_negatives: int | None = None) -> Iterator[Pair]:
    """Pairs from `query<TAB>positive<TAB>negative` lines, consecutive lines of one (query, positive) merged."""
    current: Pair | None = None
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.rstrip("\n").rstrip("\r").split("\t")
            if parts == [""]:
                continue
            if len(parts) != 3:
                raise InputFormatError(f"{path}:{lineno}: expected query<TAB>positive<TAB>negative, got "
                                       f"{len(parts)} fields")
            if lineno == 1 and all(p.strip().isdigit() for p in parts):
                raise InputFormatError(f"{path}: these are triples of ids; give the collection, queries and qrels "
                                       "files instead and mine negatives with `e5kit mine`")
            query, pos, neg = parts
            if current is not None and (current.query, current.passage) == (query, pos):
                if max_negatives is None or len(current.negatives or []) < max_negatives:
                    current.negatives = [*(current.negatives or []), neg]
                continue
            if current is not None:
                yield current
            current = Pair(query, pos, NAME, {"triples": path.name}, [neg])
    if current is not None:
        yield current


def iter_inputs(paths: Sequence[Path], *, max_negatives: int | None = None, min_score: int = 1) -> Iterator[Pair]:
    files: dict[str, list[Path]] = {}
    for p in paths:
        files.setdefault(_role(Path(p)), []).append(Path(p))
    if files.get("triples"):
        for path in files["triples"]:
            yield from iter_triples(path, max_negatives=max_negatives)
        return
    need = [r for r in ("collection", "queries", "qrels") if len(files.get(r, [])) != 1]
    if need:
        raise InputFormatError(f"msmarco: need exactly one {', '.join(need)} file (or a triples file); "
                               f"got {', '.join(str(p) for p in paths)}")
    qrels = read_qrels(files["qrels"][0], min_score=min_score)
    queries = keep_texts(iter_tsv_texts(files["queries"][0]), set(qrels.positives))
    docs = keep_texts(iter_tsv_texts(files["collection"][0]), qrels.doc_ids)
    missing = MissingIds("msmarco")
    for qid, doc_ids in qrels.positives.items():
        if qid not in queries:
            missing.add("query", qid)
            continue
        for did in doc_ids:
            if did not in docs:
                missing.add("document", did)
                continue
            yield Pair(queries[qid], docs[did], NAME, {"query_id": qid, "doc_id": did})
    missing.report()
