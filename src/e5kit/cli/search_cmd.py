"""`e5kit search CORPUS --query Q -k 10`: exact cosine search over a BEIR-style corpus, embeddings cached."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from e5kit.cli.common import add_model_args, load_model, progress_flag


def add_query_args(p: argparse.ArgumentParser) -> None:
    """--query (repeatable), --queries FILE, -k, --json."""
    p.add_argument(
        "--query", "-q", action="append", default=[], metavar="Q", help="a query (repeat for more)"
    )
    p.add_argument(
        "--queries",
        metavar="FILE",
        help="more queries from a file: .txt (one per line) or .jsonl[.gz] with _id/text (BEIR)",
    )
    p.add_argument("-k", type=int, default=10, help="results per query (default: 10)")
    p.add_argument("--json", action="store_true", help="one JSON object per query on stdout (JSON Lines)")


def read_queries(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(ids, texts) of the queries given by --query and --queries; at least one is required."""
    ids = [str(i) for i in range(len(args.query))]
    texts = list(args.query)
    if args.queries:
        from e5kit.io.records import iter_text_records

        for rec in iter_text_records(args.queries, title_field=None):
            ids.append(rec.id)
            texts.append(rec.text)
    if not texts:
        raise ValueError("no query given: use --query TEXT (repeatable) or --queries FILE")
    if args.k < 1:
        raise ValueError(f"-k must be a positive int, got {args.k}")
    return ids, texts


def snippet(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def print_results(
    ids: list[str],
    queries: list[str],
    hits: list[list[Any]],
    *,
    as_json: bool,
    texts: dict[str, str] | None = None,
) -> None:
    """Ranked hits per query as a table (rank, score, id, snippet) or as JSON Lines."""
    texts = texts or {}
    out = sys.stdout
    for qid, query, ranked in zip(ids, queries, hits, strict=True):
        if as_json:
            rows = [
                {
                    "rank": h.rank,
                    "score": round(float(h.score), 6),
                    "id": h.id,
                    **({"text": texts[h.id]} if h.id in texts else {}),
                }
                for h in ranked
            ]
            out.write(json.dumps({"query_id": qid, "query": query, "hits": rows}, ensure_ascii=False) + "\n")
            continue
        out.write(f"query: {query}\n")
        for h in ranked:
            line = f"{h.rank:>4}  {h.score:8.4f}  {h.id}"
            out.write(f"{line}  {snippet(texts[h.id])}\n" if h.id in texts else line + "\n")
        out.write("\n")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="exact cosine search over a corpus file (embeddings cached beside it)",
        description="Search a BEIR-style corpus (corpus.jsonl[.gz] with _id, title, text; or a "
        "folder holding one; .txt/.parquet work too). Documents are embedded as title + ' ' + "
        "text with the passage prompt, queries with the query prompt. The corpus embeddings are "
        "cached (beside the corpus in .e5kit-cache/, else in the user cache), keyed by model "
        "weights, corpus content and settings, so the next search encodes only the queries.",
    )
    p.add_argument("corpus", help="corpus file or BEIR folder")
    add_query_args(p)
    p.add_argument(
        "--cache-dir", default=None, help="where cached corpus indexes go (default: beside the corpus)"
    )
    p.add_argument("--no-normalize", action="store_true", help="dot product of unnormalized embeddings")
    p.add_argument("--text-field", default="text", help="document text field (default: text)")
    p.add_argument("--title-field", default="title", help="title field joined before the text ('' for none)")
    p.add_argument("--id-field", default="_id", help="document id field (default: _id, then id)")
    add_model_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from e5kit.index.cache import fetch_records, search_corpus
    from e5kit.index.corpus import CorpusFields

    qids, queries = read_queries(args)
    model = load_model(args)
    fields = CorpusFields(id=args.id_field, title=args.title_field or None, text=args.text_field)
    result = search_corpus(
        args.corpus,
        queries,
        model=model,
        k=args.k,
        cache_dir=args.cache_dir,
        normalize=not args.no_normalize,
        fields=fields,
        show_progress=progress_flag(args),
    )
    log = logging.getLogger("e5kit")
    log.info(
        "%s %d documents (index %s)",
        "encoded" if result.encoded else "cached embeddings for",
        len(result.index),
        result.index.folder,
    )
    records = fetch_records(result.index, {h.row for ranked in result.hits for h in ranked})
    texts = {rec.id: rec.text for rec in records.values()}
    print_results(qids, queries, result.hits, as_json=args.json, texts=texts)
    return 0
