"""`e5kit plot RUN_DIR`: PNG curves (loss, in-batch accuracy, lr, eval scores) of a training run."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plot", help="plot a training run's metrics to PNG files",
                              description="Read RUN_DIR/metrics.jsonl and write loss.png, accuracy.png, lr.png "
                              "(and eval.png when the run evaluated) into --out (default RUN_DIR/plots).")
    p.add_argument("run_dir", help="a training output_dir")
    p.add_argument("--out", default=None, help="folder for the PNGs (default RUN_DIR/plots)")
    p.add_argument("--smooth", type=int, default=0, help="moving-average window for loss/accuracy (0 = auto)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from e5kit.train.plot import plot_run

    for path in plot_run(args.run_dir, out_dir=args.out, smooth=args.smooth):
        print(path)
    return 0
