"""Where OpenVINO's encode time goes (ov-fp32 / ov-bf16 / ov-int8): per-op-type time from its own counters.

    .venv/bin/python benchmarks/profile_openvino.py --data ../shared/data --mode bf16 --texts 32

OpenVINO runs outside torch, so torch.profiler cannot see inside it; its CPU plugin counts the real
time of every executed node (PERF_COUNT). Shares are summed by node type and by the kernel it chose
(e.g. brgemm_avx512_bf16, jit_avx512_amx), over one encode of `--texts` passages after a warm-up.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--mode", default="bf16", choices=["fp32", "bf16", "int8", "int8w"])
    ap.add_argument("--texts", type=int, default=32)
    ap.add_argument("--model", default=None, help="default all-MiniLM-L6-v2 (gt package)")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--rows", type=int, default=12)
    args = ap.parse_args()

    import logging

    import torch

    from e5kit import E5
    from e5kit.bench import checkpoints as C
    from e5kit.encode.openvino import OpenVinoEncoder, calibration_texts
    from e5kit.encode.threads import configure_threads
    from e5kit.model.encoder import load_hf_model

    logging.getLogger("e5kit").setLevel(logging.ERROR)
    path = Path(args.model) if args.model else C.default_minilm()
    texts = C.scifact_passages(Path(args.data), args.texts) if args.data else C.synthetic_texts(args.texts)
    m = E5(path, max_seq_length=args.max_length)
    tok = m.engine.tokenizer
    calibration = tok(list(calibration_texts())).ids if args.mode == "int8" else None
    enc = OpenVinoEncoder(load_hf_model(m.checkpoint), tok.pad_id, m.checkpoint.pooling, torch.device("cpu"),
                          precision=args.mode, calibration=calibration, threads=configure_threads(),
                          extra_config={"PERF_COUNT": True})
    m.engine.encoder = enc
    m.encode(texts[:4])
    by_type: Counter[str] = Counter()
    by_kernel: Counter[str] = Counter()
    original = enc.request.infer

    def counted(*a, **k):
        out = original(*a, **k)
        for info in enc.request.get_profiling_info():
            us = info.real_time.total_seconds() * 1e6
            by_type[info.node_type] += us
            by_kernel[f"{info.node_type} [{info.exec_type}]"] += us
        return out

    enc.request.infer = counted
    m.encode(texts)
    total = sum(by_type.values()) or 1.0
    print(f"ov-{args.mode}, {len(texts)} texts, node time {total / 1e6:.2f} s")
    for title, counter in (("node type", by_type), ("node type [kernel]", by_kernel)):
        print(f"\n| {title} | ms | share |\n|---|---:|---:|")
        for name, us in counter.most_common(args.rows):
            print(f"| {name} | {us / 1e3:,.0f} | {100 * us / total:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
