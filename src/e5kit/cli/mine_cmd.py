"""`e5kit mine PAIRS -o OUT --index IDX`: hard negatives (and teacher scores) for pair shards (docs/finetune.md)."""

from __future__ import annotations

import argparse

from e5kit.cli import common
from e5kit.cli.common import add_model_args, model_kwargs, progress_flag
from e5kit.encode.batching import DEFAULT_BUDGETS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mine", help="mine hard negatives for (query, positive) pairs from an index",
                       description="For each pair, search its query in an e5kit index (dense, bm25 or hybrid) and "
                       "keep up to K retrieved documents as its negatives, guarding against false negatives "
                       "(judged positives, --skip-top, --max-score-ratio, --range). Optional cross-encoder "
                       "teacher scores. Streams, resumes, splits with --shard I/N. See docs/finetune.md.")
    p.add_argument("pairs", nargs="+", help="pair shard folders or files (e.g. from `e5kit pairs build beir`)")
    p.add_argument("-o", "--out", required=True, help="output folder of pair shards with negatives")
    p.add_argument("--index", required=True, help="index folder (built here from --corpus when given)")
    p.add_argument("--corpus", nargs="+", default=None, help="corpus files or BEIR folder: build/resume the index")
    p.add_argument("--method", choices=("dense", "bm25", "rrf", "weighted"), default="dense",
                   help="retriever: dense (the index's model), bm25, or hybrid rrf / weighted (default dense)")
    p.add_argument("-k", "--negatives", type=int, default=7, help="negatives kept per pair, at most (7)")
    p.add_argument("--depth", type=int, default=100, help="documents retrieved per query (100)")
    p.add_argument("--skip-top", type=int, default=0, help="leave out the first N ranks (0)")
    p.add_argument("--max-score-ratio", type=float, default=None, metavar="R",
                   help="keep a candidate only if its score < R x the positive's score (e.g. 0.95)")
    p.add_argument("--range", dest="sample_range", default=None, metavar="A:B",
                   help="draw the negatives at random among ranks A..B (1-based; retrieves B per query)")
    p.add_argument("--seed", type=int, default=0, help="seed of --range sampling (0)")
    p.add_argument("--alpha", type=float, default=0.5, help="hybrid weight of dense vs BM25 (0.5)")
    p.add_argument("--qrels", default=None, help="a qrels file naming more judged positives (by meta.query_id)")
    p.add_argument("--chunk", type=int, default=1024, help="pairs searched per call (1024)")
    t = p.add_argument_group("teacher")
    t.add_argument("--teacher", default=None, help="cross-encoder (sequence-classification) checkpoint: store "
                   "its scores of [positive, *negatives] as teacher_scores")
    t.add_argument("--teacher-device", default=None, help="device of the teacher (default: cuda when present)")
    t.add_argument("--teacher-precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                   help="auto = bf16 where the hardware is fast at it, else fp32")
    t.add_argument("--teacher-max-length", type=int, default=512, help="tokens per (query, passage) input (512)")
    t.add_argument("--teacher-batch-tokens", type=int, default=None,
                   help=f"padded tokens per teacher batch (default: {DEFAULT_BUDGETS})")
    o = p.add_argument_group("output")
    o.add_argument("--format", choices=("jsonl.gz", "parquet"), default="jsonl.gz", help="shard format")
    o.add_argument("--shard", default=None, metavar="I/N", help="mine only part I of N (0-based) of the pairs")
    o.add_argument("--no-resume", action="store_true", help="start over (deletes this part's earlier shards)")
    add_model_args(p)
    common.add_engine_args(p)  # --engine ray: the --corpus index is encoded on Ray (docs/scale.md)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from e5kit.cli.render import print_mine_report
    from e5kit.data.mine import MineSettings, mine_negatives
    from e5kit.data.shards import OutputSettings
    from e5kit.data.teacher import TeacherSettings

    names = [f for f in vars(MineSettings()) if f in vars(args)]
    settings = MineSettings(**{n: getattr(args, n) for n in names}).validated()  # bad values fail before loading
    teacher = TeacherSettings(args.teacher_device, args.teacher_precision, args.teacher_max_length,
                              args.teacher_batch_tokens)
    output = OutputSettings(fmt=args.format, part=args.shard, resume=not args.no_resume,
                            show_progress=progress_flag(args))
    _check(args)
    index, model = _index(args)
    report = mine_negatives(args.pairs, args.out, index=index, model=model, settings=settings, teacher=teacher,
                            output=output)
    print_mine_report(report)
    return 0


def _check(args: argparse.Namespace) -> None:
    """Everything that can be refused without a model, refused before one loads."""
    from e5kit.data.mine import check_mine_paths

    if args.engine == "ray" and not args.corpus:
        raise ValueError("--engine ray encodes the candidates of --corpus into the index; without --corpus the "
                         f"index {args.index} is used as built and there is nothing to encode: leave out --engine")
    check_mine_paths(args.pairs, args.out, args.index, args.corpus)


def _index(args: argparse.Namespace) -> tuple[object, object]:
    """(index, its model): built from --corpus first, its candidates encoded by --engine."""
    from e5kit.data.mine import prepare_index
    from e5kit.index.search import index_model

    encode = common.engine_encoder(args)  # no Ray / no cluster at --address: one error before any work
    model = index_model(args.index, model=args.model, **model_kwargs(args))
    return prepare_index(args.index, args.corpus, model, method=args.method, show_progress=progress_flag(args),
                         encode_groups=encode), model
