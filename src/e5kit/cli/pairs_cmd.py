"""`e5kit pairs`: build weak (query, passage) pairs, filter them by rules and by consistency, inspect them."""

from __future__ import annotations

import argparse
import json

from e5kit.cli import common
from e5kit.data.sources import SOURCES


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().rstrip("b")
    try:
        return int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(t)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 256M, 1G, 1048576)") from exc


def _key_value(item: str) -> tuple[str, object]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE, got {item!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pairs", help="build, filter and inspect weak training pairs",
                              description="Weak (query, passage) pairs the E5 way: build from dumps, "
                              "rule-filter, consistency-filter, inspect. See docs/pairs.md.")
    sub = p.add_subparsers(dest="pairs_command", metavar="ACTION")
    sub.required = True

    b = sub.add_parser("build", help="build pairs of one source into shards")
    b.add_argument("source", choices=tuple(SOURCES))
    b.add_argument("inputs", nargs="*", help="dump files or folders (local corpora default to this machine's files)")
    b.add_argument("-o", "--out", required=True, help="output folder of shards")
    _common(b)
    b.add_argument("--limit", type=int, default=None, help="stop after this many pairs")
    b.add_argument("--no-install", action="store_true", help="never run apt-get for missing local corpora")
    b.add_argument("--no-resume", action="store_true", help="start over instead of resuming an unfinished build")
    b.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", type=_key_value,
                   help="builder option (JSON value), e.g. --option min_score=2; repeatable")
    b.set_defaults(run=run_build)

    c = sub.add_parser("clean", help="rule filters: length, decontamination, English, exact and near duplicates")
    c.add_argument("src", nargs="+", help="folders of pair shards (with --source: that builder's dump files)")
    c.add_argument("-o", "--out", required=True, help="output folder of kept pairs (+ report-rules.json)")
    _common(c)
    c.add_argument("--config", help="JSON file of RuleConfig fields (see docs/pairs.md)")
    c.add_argument("--eval-dir", action="append", default=None,
                   help="another evaluation folder to decontaminate against, added to the known sets; repeatable")
    c.add_argument("--no-default-eval-sets", action="store_true",
                   help="decontaminate against the --eval-dir folders only, not the known evaluation sets")
    c.add_argument("--lang-backend", choices=("langid", "lingua"), default=None)
    c.add_argument("--tokenizer", default=None, help="model folder whose tokenizer counts tokens (default: words)")
    for step in ("decontaminate", "english", "exact-dedup", "near-dedup"):
        c.add_argument(f"--no-{step}", action="store_true", help=f"skip the {step} step")
    c.add_argument("--executor", choices=("local", "slurm", "ray"), default=None,
                   help="run as a datatrove pipeline (dedup global over all tasks; docs/scale.md); default local "
                        "when --tasks or --workers is given, else in this process")
    c.add_argument("--tasks", type=int, default=None, help="datatrove tasks (parts of the input)")
    c.add_argument("--workers", type=int, default=None, help="datatrove tasks at once (-1: all)")
    c.add_argument("--address", default=None, help="ray executor: cluster address (default $RAY_ADDRESS)")
    c.add_argument("--partition", default=None, help="slurm executor: partition")
    c.add_argument("--time", default="24:00:00", help="slurm executor: time limit per task")
    c.add_argument("--no-resume", action="store_true", help="datatrove: start over instead of resuming")
    c.add_argument("--source", choices=tuple(SOURCES), default=None,
                   help="SRC are this pair builder's inputs (as for `pairs build SOURCE`): build, filter, dedup and "
                        "write as one datatrove pipeline (implies --executor local unless named)")
    c.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", type=_key_value,
                   help="with --source: builder option (JSON value); repeatable")
    c.set_defaults(run=run_clean)

    f = sub.add_parser("filter", help="consistency filter: keep pairs whose passage ranks in the top-k of a pool")
    f.add_argument("src", help="folder of pair shards")
    f.add_argument("-o", "--out", required=True, help="output folder of kept pairs (+ report-consistency.json)")
    f.add_argument("--model", "-m", required=True, help="model folder or hub id used to embed")
    f.add_argument("--pool-size", type=int, default=1_000_000, help="random passages to rank against")
    f.add_argument("--top-k", type=int, default=2, help="keep a pair when its passage is within the top k")
    f.add_argument("--pool-from", default=None, help="shards to draw the pool from (default: SRC)")
    f.add_argument("--chunk-size", type=int, default=8192, help="pairs embedded per step")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--device", default=None)
    f.add_argument("--precision", default=None)
    f.add_argument("--max-seq-length", type=int, default=None, help="truncate inputs to this many tokens")
    _common(f)
    f.add_argument("--no-resume", action="store_true")
    common.add_engine_args(f)
    f.set_defaults(run=run_filter)

    s = sub.add_parser("stats", help="counts per source, length histograms (PNG), filter reasons, samples")
    s.add_argument("src", help="folder of pair shards")
    s.add_argument("-o", "--out", default=None, help="where to write stats.json and PNGs (default: SRC/stats)")
    s.add_argument("--samples", type=int, default=3, help="sample pairs shown per source")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(run=run_stats)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("jsonl.gz", "parquet"), default="jsonl.gz", help="shard format")
    p.add_argument("--shard-size", type=_size, default="256M", help="roll shards at this size (e.g. 64M)")
    p.add_argument("--shard", default=None, metavar="I/N", help="do only part I of N (0-based) of the work")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--max-bad-fraction", type=_fraction, default=None, metavar="F",
                   help="stop when more than this share of input records is malformed (default 0.01); "
                        "each skipped record is logged with file and line")


def _fraction(text: str) -> float:
    from e5kit.io.bad_records import check_fraction

    try:
        return check_fraction(float(text), "--max-bad-fraction")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _output(args: argparse.Namespace):
    from e5kit.data.shards import OutputSettings

    return OutputSettings(fmt=args.format, shard_bytes=args.shard_size, part=args.shard,
                          resume=not getattr(args, "no_resume", False),
                          show_progress=False if args.no_progress else None,
                          **({} if args.max_bad_fraction is None else {"max_bad_fraction": args.max_bad_fraction}))


def _pipeline(args: argparse.Namespace):
    if args.option and not args.source:
        raise ValueError("--option is a pair builder's option: it needs --source")
    from e5kit.scale.pairs import PipelineSettings

    return PipelineSettings(executor=args.executor or "local", tasks=args.tasks or 1, workers=args.workers or 1,
                            address=args.address, partition=args.partition, time=args.time)


def run_build(args: argparse.Namespace) -> int:
    from e5kit.data.build import build_pairs

    m = build_pairs(args.source, args.inputs, args.out, install=not args.no_install, limit=args.limit,
                    options=dict(args.option), output=_output(args))
    print(f"{m['pairs']} pairs in {len(m['shards'])} shards under {args.out}")
    return 0


def run_clean(args: argparse.Namespace) -> int:
    from e5kit.cli.render import print_rule_report
    from e5kit.data.filters import RuleConfig, filter_rules

    off = {name: False for flag, name in (("no_decontaminate", "decontaminate"), ("no_english", "english"),
                                          ("no_exact_dedup", "exact_dedup"), ("no_near_dedup", "near_dedup"))
           if getattr(args, flag)}
    if args.no_default_eval_sets:
        off["default_eval_sets"] = False
    cfg = RuleConfig.load(args.config, eval_dirs=args.eval_dir or None, lang_backend=args.lang_backend,
                          tokenizer=args.tokenizer, **off)
    if args.executor or args.tasks or args.workers or args.source or args.option:
        from e5kit.scale.pairs import clean_pairs

        rep = clean_pairs(args.src, args.out, cfg, output=_output(args), pipeline=_pipeline(args),
                          source=args.source, source_options=dict(args.option))
    else:
        rep = filter_rules(args.src, args.out, cfg, output=_output(args))
    print_rule_report(rep, args.out)
    return 0


def run_filter(args: argparse.Namespace) -> int:
    from e5kit.cli.render import print_consistency_report
    from e5kit.data.consistency import ConsistencySettings, consistency_filter

    settings = ConsistencySettings(**vars(_output(args)), pool_size=args.pool_size, top_k=args.top_k,
                                   pool_from=args.pool_from, chunk_size=args.chunk_size, seed=args.seed,
                                   device=args.device, precision=args.precision, max_seq_length=args.max_seq_length)
    rep = consistency_filter(args.src, args.out, model=common.engine_pair_encoder(args), settings=settings)
    print_consistency_report(rep, args.out)
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from e5kit.cli.render import print_pair_stats
    from e5kit.data.stats import pair_stats

    st = pair_stats(args.src, out=args.out, samples=args.samples, seed=args.seed)
    print_pair_stats(st)
    return 0
