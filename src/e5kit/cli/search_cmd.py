"""`e5kit search CORPUS --query Q -k 10`: exact cosine search over a BEIR-style corpus, embeddings cached."""

from __future__ import annotations

import argparse

from e5kit.cli.common import add_model_args, add_query_args, load_model, progress_flag, read_queries, require_inputs
from e5kit.cli.render import print_results


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
    p.add_argument("--skip-empty", action="store_true", help="leave out records with empty text (else an error)")
    add_model_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from e5kit.index.cache import check_corpus, search_corpus
    from e5kit.io.records import CorpusFields

    require_inputs(args.corpus)  # before the model load, as read_queries checks the queries
    qids, queries = read_queries(args)
    check_corpus(args.corpus, args.cache_dir)  # before the model loads
    fields = CorpusFields(id=args.id_field, title=args.title_field or None, text=args.text_field)
    result = search_corpus(args.corpus, queries, model=load_model(args), k=args.k, cache_dir=args.cache_dir,
                           normalize=not args.no_normalize, fields=fields, skip_empty=args.skip_empty,
                           show_progress=progress_flag(args), instruction=args.instruction)
    logging.getLogger("e5kit").info("%s", result.summary())
    print_results(qids, queries, result.hits, as_json=args.json, texts=result.hit_texts())
    return 0
