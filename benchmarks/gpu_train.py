"""GPU training benchmark: pairs/s and the largest batch, self-contained (random weights, synthetic pairs).

  python benchmarks/gpu_train.py --out DIR                 # BERT-base shape, bf16, length 128 (< 3 minutes)
  python benchmarks/gpu_train.py --out DIR --device cpu --small   # smoke test on a CPU

Measures, with e5kit's own GradientCache and InfoNCE:
  1. the largest plain (no GradCache) contrastive batch that fits, doubling from 64 until out of memory,
     and its training throughput (pairs/s, tokens/s; forward + backward + AdamW);
  2. one GradCache step at a 32,768-pair batch (E5's batch) with chunks of the largest plain batch / 2:
     seconds, pairs/s and peak GPU memory, showing the batch no longer depends on memory.
Writes DIR/gpu_train.json and prints it. Needs torch and transformers; no files, no network.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

try:
    import e5kit  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from e5kit.train.gradcache import GradientCache, full_batch_backward  # noqa: E402
from e5kit.train.loss import info_nce  # noqa: E402


def model_for(small: bool, device: torch.device) -> torch.nn.Module:
    from transformers import BertConfig, BertModel

    shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128) if small else \
        dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=30522, max_position_embeddings=512, **shape)).to(device).train()


def pairs(n: int, length: int, device: torch.device, seed: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(2):  # queries, passages
        ids = torch.randint(1000, 30522, (n, length), generator=g)
        out.append({"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)})
    return out


def loss_fn(reps):
    return info_nce(reps[0], reps[1], temperature=0.01)


def step(model, opt, batches, *, chunk: int, dtype) -> float:
    sync = torch.cuda.synchronize if batches[0]["input_ids"].is_cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    if chunk:
        GradientCache(model, chunk_size=chunk, autocast_dtype=dtype).backward(batches, loss_fn)
    else:
        full_batch_backward(model, batches, loss_fn, autocast_dtype=dtype)
    opt.step()
    sync()
    return time.perf_counter() - t0


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="tiny model and batches (CPU smoke test)")
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--big-batch", type=int, default=32768)
    ap.add_argument("--budget-s", type=float, default=150.0, help="stop growing batches after this many seconds")
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    length = 16 if args.small else args.length
    big = 256 if args.small else args.big_batch
    cap = 256 if args.small else 65536
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else None
    start = time.perf_counter()
    model = model_for(args.small, device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    result = {"device": torch.cuda.get_device_name(device) if cuda else "cpu", "torch": torch.__version__,
              "model": "tiny" if args.small else "bert-base shape (110M)", "length": length,
              "autocast": str(dtype) if dtype else "fp32", "plain": []}
    largest, n = 0, 16 if args.small else 64
    while n <= cap and time.perf_counter() - start < args.budget_s:
        try:
            batches = pairs(n, length, device, seed=n)
            step(model, opt, batches, chunk=0, dtype=dtype)  # warm-up at this size
            secs = step(model, opt, batches, chunk=0, dtype=dtype)
        except RuntimeError as exc:
            if not is_oom(exc):
                raise
            result["first_oom_batch"] = n
            break
        finally:
            batches = None
            opt.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.empty_cache()
        largest = n
        result["plain"].append({"batch_pairs": n, "step_s": round(secs, 3), "pairs_per_s": round(n / secs, 1),
                                "tokens_per_s": round(2 * n * length / secs)})
        print(json.dumps(result["plain"][-1]), flush=True)
        n *= 2
    result["largest_plain_batch"] = largest
    chunk = max(1, largest // 2)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    secs = step(model, opt, pairs(big, length, device, seed=1), chunk=chunk, dtype=dtype)
    result["gradcache"] = {"batch_pairs": big, "chunk": chunk, "step_s": round(secs, 2),
                           "pairs_per_s": round(big / secs, 1), "tokens_per_s": round(2 * big * length / secs),
                           "peak_gpu_mem_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if cuda
                           else None}
    result["total_s"] = round(time.perf_counter() - start, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_train.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
