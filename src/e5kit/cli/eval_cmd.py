"""`e5kit eval --model M --tasks scifact,stsbenchmark,... [--output results/]`."""

from __future__ import annotations

import argparse

from e5kit.cli.common import add_instruction_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model (or bm25) on BEIR/MTEB-style tasks",
                       description="Evaluate MODEL on TASKS with mteb 2.x definitions; one JSON per task under "
                       "OUTPUT/<key>/ (a checkpoint folder's key is its name plus its weights' short fingerprint, "
                       "e.g. a__step-0000002@3f9c1a2b; a hub id's is org__name), existing results reused unless "
                       "--overwrite; a Markdown table at the end. "
                       "Tasks: registered names (scifact, stsbenchmark, sts12..sts16, banking77, "
                       "amazon_counterfactual_en, twentynewsgroups, twitterurl; 'all' for every one) or "
                       "TYPE:PATH for your own data (TYPE = retrieval, sts, classification, clustering, "
                       "pair_classification).")
    p.add_argument("--model", "-m", required=True, help="checkpoint folder, hub id, or 'bm25'")
    p.add_argument("--tasks", "-t", required=True, help="comma-separated task names or TYPE:PATH; 'all'")
    p.add_argument("--data-dir", default=None,
                   help="folder of the registered datasets (default: $E5KIT_DATA_DIR, else ../shared/data)")
    p.add_argument("--output", "-o", default="results", help="results folder (default: results)")
    p.add_argument("--overwrite", action="store_true", help="recompute tasks that already have a result")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when present)")
    p.add_argument("--precision", default=None, help="fp32 (default, exact), bf16, fp16, ...")
    p.add_argument("--batch-tokens", type=int, default=None, metavar="N", help="token budget per batch")
    p.add_argument("--ignore-identical-ids", action="store_true",
                   help="retrieval: drop a retrieved document whose id equals the query id (ArguAna-like sets)")
    add_instruction_arg(p, "; here for every task of this run (e.g. your own TYPE:PATH data), default the "
                           "registered task's (docs/eval.md), else the model's")
    p.add_argument("--table", default=None, metavar="FILE", help="also write the Markdown table to FILE")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from e5kit.eval.registry import REGISTRY
    from e5kit.eval.report import results_table
    from e5kit.eval.runner import evaluate
    from e5kit.io.atomic import atomic_write_text, check_writable

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    tasks = list(REGISTRY) if tasks == ["all"] else tasks
    if args.table:
        check_writable(args.table)  # now, not after the evaluation
    results = evaluate(args.model, tasks, output=args.output, data_dir=args.data_dir, overwrite=args.overwrite,
                       device=args.device, precision=args.precision, batch_tokens=args.batch_tokens,
                       show_progress=False if args.no_progress else None,
                       ignore_identical_ids=True if args.ignore_identical_ids else None,
                       instruction=args.instruction)
    table = results_table(results)
    print(table)
    if args.table:
        atomic_write_text(args.table, table + "\n")
    return 0
