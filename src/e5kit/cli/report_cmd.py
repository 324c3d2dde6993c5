"""`e5kit report RESULTS [--compare A B ...] [--out report.md] [--plot chart.png]`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="side-by-side table and bar chart of eval results",
                       description="Read the JSON results under RESULTS (written by `e5kit eval`) and print a "
                       "Markdown table with one column per model, write it to --out, and draw a bar chart PNG.")
    p.add_argument("results", help="results folder (RESULTS/<model>/<task>.json)")
    p.add_argument("--compare", nargs="+", metavar="MODEL", default=None,
                   help="model folder names under RESULTS to put side by side (default: all)")
    p.add_argument("--out", default=None, help="Markdown file (default: RESULTS/report.md)")
    p.add_argument("--plot", default=None, help="PNG bar chart (default: RESULTS/report.png)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from e5kit.eval.report import bar_chart, compare_table, load_results

    all_results = load_results(args.results)
    if not all_results:
        raise ValueError(f"no e5kit results under {args.results}")
    models = args.compare or sorted(all_results)
    table = compare_table(all_results, models)
    print(table)
    out = Path(args.out) if args.out else Path(args.results) / "report.md"
    out.write_text(table + "\n", encoding="utf-8")
    png = bar_chart(all_results, models, args.plot or Path(args.results) / "report.png")
    logging.getLogger("e5kit").info("wrote %s and %s", out, png)
    return 0
