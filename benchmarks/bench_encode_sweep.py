"""Max-tokens sweep on CPU: e5kit fp32 and bf16 at several token budgets, alternating, same texts.

    .venv/bin/python benchmarks/bench_encode_sweep.py --data ../shared/data --texts 64
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--texts", type=int, default=64)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--budgets", default="2048,4096,8192,16384,32768")
    ap.add_argument("--modes", default="fp32,bf16")
    args = ap.parse_args()

    import logging

    import torch
    from transformers import AutoConfig

    from e5kit.bench import checkpoints as C
    from e5kit.bench import encode as B
    from e5kit.bench import measure as M
    from e5kit.bench import report as R

    logging.getLogger("e5kit").setLevel(logging.ERROR)
    dev = torch.device("cpu")
    path = C.default_minilm()
    texts = C.scifact_passages(Path(args.data), args.texts) if args.data else C.synthetic_texts(args.texts)
    runners = []
    for mode in args.modes.split(","):
        for budget in map(int, args.budgets.split(",")):
            r = B.e5kit_runner(path, mode, dev, budget, 256)
            r.name = f"e5kit {mode} max_tokens={budget}"
            runners.append(r)
    peaks = {"float32": M.matmul_peak(torch.float32, dev), "bfloat16": M.matmul_peak(torch.bfloat16, dev)}
    rows = B.run_speed(runners, texts, lengths=B._lengths(path, texts, 256), config=AutoConfig.from_pretrained(path),
                       device=dev, reps=args.reps, peaks=peaks)
    print(R.markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
