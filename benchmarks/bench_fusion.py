"""Fused vs unfused CPU linears in the packed BERT forward, alternating on the same batches.

Fused: oneDNN applies bias, GELU and the residual adds inside the GEMMs (model/packed.py). Prints
seconds per forward for both, their ratio, and the max |diff| of the hidden states.

    .venv/bin/python benchmarks/bench_fusion.py --data ../shared/data --size minilm --texts 64
    .venv/bin/python benchmarks/bench_fusion.py --data ../shared/data --size base --texts 24
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--size", choices=("minilm", "base"), default="minilm")
    ap.add_argument("--texts", type=int, default=64, help="texts per batch (one batch, one forward)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dtypes", default="fp32,bf16")
    args = ap.parse_args()

    import torch
    from transformers import AutoModel

    from e5kit.bench import checkpoints as C
    from e5kit.encode.threads import configure_threads
    from e5kit.model.packed import PackedBatch, PackedBert
    from e5kit.model.tokenize import TextTokenizer

    configure_threads()
    tmp = tempfile.TemporaryDirectory()
    minilm = C.default_minilm()
    path, max_len = (minilm, 256) if args.size == "minilm" else (C.make_random_bert(Path(tmp.name), minilm), 512)
    from transformers import AutoTokenizer

    tok = TextTokenizer(AutoTokenizer.from_pretrained(path), max_len)
    texts = C.scifact_passages(Path(args.data), args.texts)  # "passage: " + title + text
    ids = tok(texts).ids
    batch = PackedBatch(ids, torch.device("cpu"))
    print(f"{args.size}: {len(ids)} texts, {batch.tokens} real tokens, width {batch.width}, "
          f"{torch.get_num_threads()} threads")
    for name in args.dtypes.split(","):
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[name]
        hf = AutoModel.from_pretrained(path).eval().to(dtype)
        models = {"unfused": PackedBert(hf, fuse=False).eval(), "fused": PackedBert(hf, fuse=True).eval()}
        best = {k: float("inf") for k in models}
        with torch.inference_mode():
            outs = {k: m(batch).float() for k, m in models.items()}  # warm-up, and the outputs to compare
            for _ in range(args.reps):
                for k, m in models.items():  # alternate, so both see the same machine state
                    start = time.perf_counter()
                    m(batch)
                    best[k] = min(best[k], time.perf_counter() - start)
        diff = (outs["fused"] - outs["unfused"]).abs().max().item()
        print(f"{name}: unfused {best['unfused']:.3f} s, fused {best['fused']:.3f} s, "
              f"speed-up {best['unfused'] / best['fused']:.2f}x, max |diff| {diff:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
