"""Where e5kit's encode time goes: torch.profiler op table for one mode on SciFact passages.

    .venv/bin/python benchmarks/profile_encode.py --data ../shared/data --mode fp32 --texts 16
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--mode", default="fp32")
    ap.add_argument("--texts", type=int, default=16)
    ap.add_argument("--model", default=None, help="default all-MiniLM-L6-v2 (gt package)")
    ap.add_argument("--rows", type=int, default=14)
    args = ap.parse_args()

    import logging

    import torch
    from torch.profiler import ProfilerActivity, profile

    from e5kit.bench import checkpoints as C
    from e5kit.bench import encode as B

    logging.getLogger("e5kit").setLevel(logging.ERROR)
    path = Path(args.model) if args.model else C.default_minilm()
    texts = C.scifact_passages(Path(args.data), args.texts) if args.data else C.synthetic_texts(args.texts)
    runner = B.e5kit_runner(path, args.mode, torch.device("cpu"), None, 256)  # e5kit's default budget
    runner.encode(texts[:4])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        runner.encode(texts)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
