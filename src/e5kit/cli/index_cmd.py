"""`e5kit index build|merge|search|check|ann|bm25`: corpus-scale embedding indexes on disk."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from e5kit.cli.common import add_model_args, load_model, progress_flag
from e5kit.cli.search_cmd import add_query_args, print_results, read_queries

log = logging.getLogger("e5kit")


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
    b.set_defaults(run=run_build)

    m = cmds.add_parser("merge", help="check every slice and shard is there and sound; mark the index complete")
    m.add_argument("index", help="index folder")
    m.add_argument("--no-checksums", action="store_true", help="skip re-reading every file's checksum")
    m.set_defaults(run=run_merge)

    s = cmds.add_parser("search", help="search an index (exact, FAISS, BM25 or hybrid)")
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
    a.set_defaults(run=run_ann)

    m25 = cmds.add_parser("bm25", help="build a BM25 index over the index's corpus (for bm25/hybrid search)")
    m25.add_argument("index", help="index folder")
    m25.add_argument("--k1", type=float, default=0.9)
    m25.add_argument("--b", type=float, default=0.4)
    m25.set_defaults(run=run_bm25)


def run_build(args: argparse.Namespace) -> int:
    from e5kit.index.build import build_index
    from e5kit.index.corpus import CorpusFields

    fields = None
    if any(v is not None for v in (args.text_field, args.title_field, args.id_field)):
        fields = CorpusFields(
            id=args.id_field or "_id",
            title="title" if args.title_field is None else (args.title_field or None),
            text=args.text_field or "text",
        )
    if args.device is None:
        from e5kit.index.build import rank_device

        args.device = rank_device()  # one GPU per torchrun rank
    model = load_model(args) if args.model or _no_index(args.output) else _index_model(args, args.output)
    report = build_index(
        args.corpus,
        args.output,
        model=model,
        shard=args.shard,
        shard_size=args.shard_size,
        dtype=args.dtype,
        quantize=args.quantize,
        normalize=False if args.no_normalize else None,
        fields=fields,
        skip_empty=True if args.skip_empty else None,
        show_progress=progress_flag(args),
        merge=not args.no_merge,
    )
    log.info(
        "%s: %d documents in %d shards; encoded %d documents (%d shards, %.1f docs/s), kept %d shards; %s",
        report.folder,
        report.docs,
        report.shards,
        report.encoded_docs,
        report.encoded_shards,
        report.docs_per_second,
        report.skipped_shards,
        "complete" if report.complete else "not merged yet",
    )
    return 0


def _no_index(folder: str) -> bool:
    from e5kit.index.layout import IndexLayout

    return not IndexLayout(folder).exists()


def _index_model(args: argparse.Namespace, folder: str):
    """The index's own model (name, precision, max length) unless the user named another."""
    from e5kit.index.layout import IndexLayout, IndexSettings

    s = IndexSettings.from_json(IndexLayout(folder).read_manifest()["settings"])
    if not args.model:
        args.model = s.model
        args.precision = args.precision or s.precision
        args.max_length = args.max_length or s.max_seq_length
    return load_model(args)


def run_merge(args: argparse.Namespace) -> int:
    from e5kit.index.build import merge_index

    manifest = merge_index(args.index, checksums=not args.no_checksums)
    c = manifest["complete"]
    log.info("%s: complete, %d documents in %d shards", args.index, c["docs"], c["shards"])
    return 0


def run_search(args: argparse.Namespace) -> int:
    from e5kit.index.store import DenseIndex

    qids, queries = read_queries(args)
    dense = DenseIndex.open(args.index)
    model = _index_model(args, args.index)
    if args.method != "dense":
        if args.ann:
            raise ValueError("--ann searches the dense vectors only; drop it or use --method dense")
        from e5kit.index.hybrid import HybridSearcher

        hits = HybridSearcher.open(dense, model).search(
            queries,
            args.k,
            method=args.method,
            alpha=args.alpha,
            vectors=args.vectors,
            show_progress=progress_flag(args),
        )
    elif args.ann:
        from e5kit.index.ann import AnnIndex

        dense.check_model(model)
        q = model.encode_queries(queries, normalize=dense.settings.normalize, show_progress=progress_flag(args))
        ann = AnnIndex.load(dense, args.ann)
        hits = dense.hits(
            *ann.search(
                q,
                args.k,
                **{
                    k: v
                    for k, v in (
                        ("nprobe", args.nprobe),
                        ("refine", args.refine),
                        ("ef_search", args.ef_search),
                    )
                    if v is not None
                },
            )
        )
    else:
        hits = dense.search(model, queries, args.k, vectors=args.vectors, show_progress=progress_flag(args))
    print_results(qids, queries, hits, as_json=args.json)
    return 0


def run_check(args: argparse.Namespace) -> int:
    from e5kit.index.check import check_index
    from e5kit.index.store import DenseIndex

    rows = check_index(DenseIndex.open(args.index), sample=args.sample, k=args.k, verify=not args.no_verify)
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=1))
        return 0
    sys.stdout.write(f"{'method':<14} {'recall@' + str(args.k):>9} {'ms/query':>9}  params\n")
    for r in rows:
        sys.stdout.write(f"{r.method:<14} {r.recall:9.4f} {r.ms_per_query:9.3f}  {json.dumps(r.params)}\n")
    return 0


def run_ann(args: argparse.Namespace) -> int:
    from e5kit.index.ann import DEFAULTS, build_ann
    from e5kit.index.store import DenseIndex

    given = {
        "nlist": args.nlist,
        "m": args.m,
        "nbits": args.nbits,
        "train_size": args.train_size,
        "nprobe": args.nprobe,
        "refine": args.refine,
        "M": args.M,
        "ef_construction": args.ef_construction,
        "ef_search": args.ef_search,
    }
    params = {k: v for k, v in given.items() if v is not None}
    bad = set(params) - set(DEFAULTS[args.kind])
    if bad:
        raise ValueError(f"option(s) {sorted(bad)} do not apply to --kind {args.kind}")
    ann = build_ann(DenseIndex.open(args.index), args.kind, **params)
    log.info("%s index built in %.1fs with %s", args.kind, ann.build_seconds, json.dumps(ann.params))
    return 0


def run_bm25(args: argparse.Namespace) -> int:
    from e5kit.index.hybrid import build_bm25
    from e5kit.index.store import DenseIndex

    index = build_bm25(DenseIndex.open(args.index), k1=args.k1, b=args.b)
    log.info("BM25 index over %d documents written to %s/bm25", len(index.ids), args.index)
    return 0
