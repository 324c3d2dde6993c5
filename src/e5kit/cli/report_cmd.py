"""`e5kit report RESULTS [--compare A B ...] [--out report.md] [--plot chart.png]`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="side-by-side table and bar chart of eval results",
                       description="Read the JSON results under RESULTS (written by `e5kit eval`) and print a "
                       "Markdown table with one column per model, write it to --out, and draw a bar chart PNG.")
    p.add_argument("results", help="results folder (RESULTS/<model>/<task>.json)")
    p.add_argument("--compare", nargs="+", metavar="MODEL", default=None,
                   help="models to put side by side (default: all): a result folder name under RESULTS, the "
                   "checkpoint folder or hub id given to eval, or a unique part of the name (e5-base-unsupervised, "
                   "a__step-0000002); an ambiguous name lists the matches")
    p.add_argument("--out", default=None, help="Markdown file (default: RESULTS/report.md)")
    p.add_argument("--plot", default=None, help="PNG bar chart (default: RESULTS/report.png)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from e5kit.eval.report import bar_chart, compare_table, load_results, resolve_models
    from e5kit.io.atomic import atomic_write_text

    all_results = load_results(args.results)
    if not all_results:
        raise ValueError(f"no e5kit results under {args.results}")
    models = resolve_models(all_results, args.compare)
    table = compare_table(all_results, models)
    print(table)
    out = Path(args.out) if args.out else Path(args.results) / "report.md"
    atomic_write_text(out, table + "\n")
    png = bar_chart(all_results, models, args.plot or Path(args.results) / "report.png")
    logging.getLogger("e5kit").info("wrote %s and %s", out, png)
    return 0
