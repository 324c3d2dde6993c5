"""The docs/train.md demonstration: score checkpoints on SciFact nDCG@10 and STS Benchmark Spearman.

  python benchmarks/bench_train_demo.py start CONFIG.yaml --set ... --out DIR
      saves the run's starting point (the same fresh random weights `e5kit train` starts from)
  python benchmarks/bench_train_demo.py score CKPT [CKPT ...] [--max-seq-length N] [--tasks scifact,stsbenchmark]
      prints one JSON line per checkpoint and task (e5kit.eval's run_task, mteb definitions)

The evaluation sets are only read here, after training; nothing is trained or selected on them.
"""

from __future__ import annotations

import argparse
import json
import time


def start(args) -> None:
    from e5kit.model.save import InferenceSpec, write_checkpoint
    from e5kit.train.config import load_config
    from e5kit.train.init import initial_model

    cfg = load_config(args.config, args.overrides)
    model, tok = initial_model(cfg)
    prompts = {"query": cfg.query_prefix, "passage": cfg.passage_prefix}
    spec = InferenceSpec(min(512, model.config.max_position_embeddings), prompts)
    write_checkpoint(args.out, model, tok, spec, extra_files={"train_config.json": cfg.to_dict()})
    print(args.out)


def score(args) -> None:
    from e5kit import E5
    from e5kit.eval.models import DenseModel
    from e5kit.eval.registry import get_dataset
    from e5kit.eval.runner import run_task

    for ckpt in args.checkpoints:
        model = DenseModel(E5(ckpt, max_seq_length=args.max_seq_length), show_progress=False)
        for task in args.tasks.split(","):
            t0 = time.perf_counter()
            result = run_task(model, get_dataset(task))
            row = {"checkpoint": ckpt, "task": task, "metric": result["main_score"],
                   "score": round(result["main_score_value"], 4), "max_seq_length": model.model.max_seq_length,
                   "prompts": model.model.prompts, "seconds": round(time.perf_counter() - t0, 1)}
            print(json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("config")
    s.add_argument("--set", dest="overrides", action="append", default=[])
    s.add_argument("--out", required=True)
    c = sub.add_parser("score")
    c.add_argument("checkpoints", nargs="+")
    c.add_argument("--max-seq-length", type=int, default=None)
    c.add_argument("--tasks", default="scifact,stsbenchmark")
    args = ap.parse_args()
    {"start": start, "score": score}[args.cmd](args)


if __name__ == "__main__":
    main()
