"""e5kit's own attention kernels against torch's SDPA, as the packed encoder calls each, side by side in one run.

    .venv/bin/python benchmarks/bench_attention.py                      # MiniLM- and BERT-base-like batches
    .venv/bin/python benchmarks/bench_attention.py --lengths 128x32 --heads 12 --head-dim 32

Both sides run through `_PackedLayer.attend` (model/packed.py) on the same packed Q|K|V rows: the native kernel
as the encoder runs it, and torch's path (padding, scatter/gather, SDPA) with the kernel switched off for the
call. Prints ms per call (best of --reps), the ratio, and the max |diff| of each to float64 attention.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

SHAPES = {  # one CPU batch of <= 4,096 padded tokens, lengths as length-sorted SciFact batches come
    "minilm": ("256x12,251,249,157,101", 12, 32),  # most passages cut at 256
    "base": ("512x2,470,430,380,330,300,270,240,210,190", 12, 64),  # @512 lengths vary (the bench's 24: mean 328)
    "base-full": ("512x6,498,455", 12, 64),  # texts all near the limit: torch's unmasked flash path, its best case
}


def parse_lengths(text: str) -> list[int]:
    """'256x12,251,17' -> twelve 256s, then 251 and 17."""
    out: list[int] = []
    for part in text.split(","):
        value, _, times = part.strip().partition("x")
        out += [int(value)] * int(times or 1)
    if not out or min(out) < 1:
        raise ValueError(f"lengths {text!r} must be positive integers, e.g. 256x12,101")
    return out


def layer_for(heads: int, head_dim: int, dtype):
    """A packed BERT layer of this width (random weights: only its attention is timed)."""
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertLayer

    from e5kit.model.packed import _PackedLayer

    cfg = BertConfig(hidden_size=heads * head_dim, num_attention_heads=heads, intermediate_size=4 * heads * head_dim)
    return _PackedLayer(BertLayer(cfg).to(dtype).eval(), heads, fuse=False)


def time_call(fn, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def row(dtype, batch, heads: int, head_dim: int, reps: int) -> str:
    """One table row: torch's path and the kernel on the same random Q|K|V rows of `batch`."""
    import torch

    from e5kit.model import native_attention as na

    name = str(dtype).removeprefix("torch.")
    layer = layer_for(heads, head_dim, dtype)
    qkv = torch.randn(batch.tokens, 3 * heads * head_dim, generator=torch.Generator().manual_seed(0)).to(dtype)
    want = na.reference(qkv.double(), batch.offsets, heads)
    call = lambda: layer.attend(qkv, batch, "padded")  # noqa: E731
    real = na.usable
    try:
        na.usable = lambda *a: False  # torch's path, as the encoder runs it without the kernel
        sdpa_err = (call().double() - want).abs().max().item()
        sdpa = time_call(call, reps)
    finally:
        na.usable = real
    reason = na.status(dtype)
    if reason is not None:
        return f"| {name} | {head_dim} | {sdpa * 1e3:.2f} | off: {reason} | — | {sdpa_err:.1e} | — |"
    err = (call().double() - want).abs().max().item()
    native = time_call(call, reps)
    return (f"| {name} | {head_dim} | {sdpa * 1e3:.2f} | {native * 1e3:.2f} | {sdpa / native:.2f}× | "
            f"{sdpa_err:.1e} | {err:.1e} |")


def run(lengths: list[int], heads: int, head_dim: int, reps: int) -> list[str]:
    import torch

    from e5kit.model.packed import PackedBatch

    batch = PackedBatch([[5] * n for n in lengths], torch.device("cpu"))
    return [row(dtype, batch, heads, head_dim, reps) for dtype in (torch.bfloat16, torch.float32)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=[*SHAPES, "all"], default="all")
    ap.add_argument("--lengths", help="text lengths of one batch, e.g. 256x12,101 (overrides --shape)")
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()

    import torch

    from e5kit.bench.measure import cpu_info, cpu_line

    jobs = ([(parse_lengths(args.lengths), args.heads, args.head_dim)] if args.lengths else
            [(parse_lengths(SHAPES[s][0]), *SHAPES[s][1:]) for s in (SHAPES if args.shape == "all" else [args.shape])])
    print(f"CPU {cpu_line(cpu_info())}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    for lengths, heads, head_dim in jobs:
        print(f"\n{len(lengths)} texts, {sum(lengths)} tokens, {heads} heads of {head_dim}, best of {args.reps}\n")
        print("| dtype | head size | torch SDPA ms | e5kit kernel ms | × | SDPA max abs diff | kernel max abs diff |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        print("\n".join(run(lengths, heads, head_dim, args.reps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
