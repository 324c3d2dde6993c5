"""`e5kit index build|merge|search|check|ann|bm25`: corpus-scale embedding indexes on disk."""

from __future__ import annotations

import argparse
import json
import logging

from e5kit.cli import common
from e5kit.cli.common import add_model_args, add_query_args, model_kwargs, progress_flag, read_queries

log = logging.getLogger("e5kit")
ANN_OPTIONS = ("nlist", "m", "nbits", "train_size", "nprobe", "refine", "M", "ef_construction", "ef_search")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index",
        help="build, merge, search and check sharded embedding indexes",
        description="Corpus-scale indexes: streamed, sharded, resumable encoding; exact, FAISS, "
        "BM25 and hybrid search. See docs/index.md.",
    )
    cmds = p.add_subparsers(dest="index_command", metavar="ACTION")
    cmds.required = True

    b = cmds.add_parser(
        "build",
        help="encode a corpus into INDEX_DIR (resumes; appends new documents)",
        description="Stream CORPUS (JSONL/JSONL.gz/Parquet/TXT files or a BEIR folder) through "
        "the model into fixed-size shards. Rerun the same command after a crash to resume; run "
        "it over a grown corpus to encode only the new documents. Options left out keep the "
        "existing index's values.",
    )
    b.add_argument("corpus", nargs="+", help="corpus files or folders, in order")
    b.add_argument("-o", "--output", required=True, help="index folder")
    b.add_argument("--shard-size", type=int, default=None, help="documents per shard (default: 16384)")
    b.add_argument("--dtype", choices=("float32", "float16"), default=None, help="stored vectors (default float32)")
    b.add_argument(
        "--quantize",
        action="append",
        choices=("int8", "binary"),
        default=None,
        help="also store an int8 or binary copy (repeatable)",
    )
    b.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="encode only slice I of N (default: torchrun's RANK/WORLD_SIZE, else all)",
    )
    b.add_argument("--no-merge", action="store_true", help="do not finalize the index after this slice")
    b.add_argument("--skip-empty", action="store_true", help="leave out records with empty text (else an error)")
    b.add_argument("--no-normalize", action="store_true", help="store unnormalized embeddings")
    b.add_argument("--text-field", default=None, help="text field (default: text)")
    b.add_argument("--title-field", default=None, help="title field joined before the text (default: title; '')")
    b.add_argument("--id-field", default=None, help="id field (default: _id, then id)")
    add_model_args(b)
    common.add_engine_args(b)
    b.set_defaults(run=run_build)

    m = cmds.add_parser("merge", help="check every slice and shard is there and sound; mark the index complete")
    m.add_argument("index", help="index folder")
    m.add_argument("--no-checksums", action="store_true", help="skip re-reading every file's checksum")
    m.set_defaults(run=run_merge)

    s = cmds.add_parser(
        "search",
        help="search an index (exact, FAISS, BM25 or hybrid)",
        description="Search an index. Every option is checked before the model loads. Shard checksums are "
        "verified by `e5kit index check` (and here with --verify, which reads every byte); a plain search only "
        "refuses impossible scores (not finite, or above 1 for unit vectors), which catches most but not all "
        "corruption.",
    )
    s.add_argument("index", help="index folder")
    add_query_args(s)
    s.add_argument(
        "--method",
        choices=("dense", "bm25", "rrf", "weighted"),
        default="dense",
        help="dense (default), bm25, or hybrid fusion rrf / weighted (needs `index bm25`)",
    )
    s.add_argument("--alpha", type=float, default=0.5, help="hybrid weight of dense vs BM25 (default 0.5)")
    s.add_argument(
        "--vectors",
        choices=("float", "int8", "binary"),
        default="float",
        help="exact search over the float vectors or a quantized copy",
    )
    s.add_argument("--ann", choices=("flat", "ivfpq", "hnsw"), default=None, help="search a FAISS index instead")
    s.add_argument("--nprobe", type=int, default=None, help="IVF lists probed (ivfpq)")
    s.add_argument("--refine", type=int, default=None, help="candidates re-scored exactly, x k (ivfpq)")
    s.add_argument("--ef-search", type=int, default=None, help="HNSW search breadth")
    s.add_argument("--verify", action="store_true",
                   help="verify every shard file's checksum first (else only `index check` does)")
    add_model_args(s)
    s.set_defaults(run=run_search)

    c = cmds.add_parser("check", help="verify files; recall@k of quantized copies and FAISS indexes vs exact")
    c.add_argument("index", help="index folder")
    c.add_argument("--sample", type=int, default=200, help="query-like vectors sampled from the index (200)")
    c.add_argument("-k", type=int, default=10, help="recall@k (default 10)")
    c.add_argument("--no-verify", action="store_true", help="skip checksum verification")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(run=run_check)

    a = cmds.add_parser("ann", help="build a FAISS index (flat, ivfpq, hnsw) from the shards")
    a.add_argument("index", help="index folder")
    a.add_argument("--kind", choices=("flat", "ivfpq", "hnsw"), required=True)
    a.add_argument("--nlist", type=int, default=None, help="ivfpq: inverted lists (default 4*sqrt(n))")
    a.add_argument("--m", type=int, default=None, help="ivfpq: sub-quantizers (default dim/8)")
    a.add_argument("--nbits", type=int, default=None, help="ivfpq: bits per sub-quantizer (default 8)")
    a.add_argument("--train-size", type=int, default=None, help="ivfpq: training vectors (default 100000)")
    a.add_argument("--nprobe", type=int, default=None, help="ivfpq: default lists probed (32)")
    a.add_argument("--refine", type=int, default=None, help="ivfpq: default exact re-scoring depth x k (50)")
    a.add_argument("--M", type=int, default=None, help="hnsw: links per node (32)")
    a.add_argument("--ef-construction", type=int, default=None, help="hnsw: build breadth (100)")
    a.add_argument("--ef-search", type=int, default=None, help="hnsw: default search breadth (128)")
    a.add_argument("--overwrite", action="store_true", help="replace an existing index of this kind")
    a.set_defaults(run=run_ann)

    m25 = cmds.add_parser("bm25", help="build a BM25 index over the index's corpus (for bm25/hybrid search)")
    m25.add_argument("index", help="index folder")
    m25.add_argument("--k1", type=float, default=0.9)
    m25.add_argument("--b", type=float, default=0.4)
    m25.add_argument("--overwrite", action="store_true", help="replace an existing BM25 index")
    m25.set_defaults(run=run_bm25)


def run_build(args: argparse.Namespace) -> int:
    from e5kit.index.build import BuildSettings, build_index, rank_device
    from e5kit.index.corpus import CorpusFields
    from e5kit.index.search import index_model

    fields = CorpusFields.from_options(id=args.id_field, title=args.title_field, text=args.text_field)
    settings = BuildSettings(shard=args.shard, shard_size=args.shard_size, dtype=args.dtype, quantize=args.quantize,
                             normalize=False if args.no_normalize else None, fields=fields,
                             skip_empty=True if args.skip_empty else None, show_progress=progress_flag(args),
                             merge=not args.no_merge)
    kwargs = model_kwargs(args)
    kwargs["device"] = kwargs["device"] or rank_device()  # one GPU per torchrun rank
    report = build_index(args.corpus, args.output, model=lambda: index_model(args.output, model=args.model, **kwargs),
                         settings=settings, encode_groups=common.engine_encoder(args))
    log.info("%s", report.summary())
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from e5kit.index.merge import merge_index

    c = merge_index(args.index, checksums=not args.no_checksums)["complete"]
    log.info("%s: complete, %d documents in %d shards", args.index, c["docs"], c["shards"])
    return 0


def run_search(args: argparse.Namespace) -> int:
    from e5kit.cli.render import print_results
    from e5kit.index.search import SearchOptions, index_model, prepare, search
    from e5kit.index.store import DenseIndex

    options = SearchOptions(alpha=args.alpha, vectors=args.vectors, ann=args.ann, nprobe=args.nprobe,
                            refine=args.refine, ef_search=args.ef_search, show_progress=progress_flag(args),
                            instruction=args.instruction)
    qids, queries = read_queries(args)
    # every check before the model loads: folder, files, options (the checksums too with --verify)
    index = prepare(DenseIndex.open(args.index, verify=args.verify), k=args.k, method=args.method, options=options)
    model = index_model(args.index, model=args.model, **model_kwargs(args))
    hits = search(index, queries, k=args.k, method=args.method, model=model, options=options)
    print_results(qids, queries, hits, as_json=args.json)
    return 0


def run_check(args: argparse.Namespace) -> int:
    from e5kit.cli.render import print_check
    from e5kit.index.check import check_index
    from e5kit.index.store import DenseIndex

    rows = check_index(DenseIndex.open(args.index), sample=args.sample, k=args.k, verify=not args.no_verify)
    print_check(rows, args.k, as_json=args.json)
    return 0


def run_ann(args: argparse.Namespace) -> int:
    from e5kit.index.ann import build_ann, check_params
    from e5kit.index.store import DenseIndex

    given = {name: getattr(args, name) for name in ANN_OPTIONS if getattr(args, name) is not None}
    check_params(args.kind, given)  # ranges first; those that depend on the data when the index is open
    ann = build_ann(DenseIndex.open(args.index), args.kind, overwrite=args.overwrite, **given)
    log.info("%s index built in %.1fs with %s", args.kind, ann.build_seconds, json.dumps(ann.params))
    return 0


def run_bm25(args: argparse.Namespace) -> int:
    from e5kit.index.hybrid import build_bm25
    from e5kit.index.store import DenseIndex

    index = build_bm25(DenseIndex.open(args.index), k1=args.k1, b=args.b, overwrite=args.overwrite)
    log.info("BM25 index over %d documents written to %s/bm25", len(index.ids), args.index)
    return 0
