"""Training throughput and memory on this machine (not a test; see docs/bench-train.md).

  python benchmarks/bench_train.py speed  [--sizes minilm,base] [--batch 32] [--chunk 16] [--steps 3]
  python benchmarks/bench_train.py memory [--size base] [--batch 256] [--chunk 32]
  python benchmarks/bench_train.py loss-memory [--batch 32768] [--dim 768]

`speed`: pairs/s and tokens/s of full training steps (forward, backward, AdamW) at length 128 with random
weights and random 128-token pairs, plain full-batch backward and GradCache side by side, in one process.
`memory`: peak RSS of one GradCache step of `--batch` pairs (run it once per batch size: peak RSS is a
per-process high-water mark). `loss-memory`: peak RSS of the InfoNCE loss + embedding gradients alone at a
32,768-pair batch, the part of a GradCache step that grows with the batch.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

SIZES = {  # (hidden, layers, heads, ffn)
    "minilm": (384, 6, 12, 1536),  # all-MiniLM-L6-v2 shape
    "base": (768, 12, 12, 3072),  # BERT-base / e5-base shape
}
LENGTH = 128
VOCAB = 30522


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def make_model(size: str) -> torch.nn.Module:
    from transformers import BertConfig, BertModel

    hidden, layers, heads, ffn = SIZES[size]
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=ffn, max_position_embeddings=512)
    return BertModel(cfg).train()


def batch(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, VOCAB, (n, LENGTH), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def train_step(model, opt, n: int, chunk: int, seed: int) -> float:
    from e5kit.train.gradcache import GradientCache, full_batch_backward
    from e5kit.train.loss import info_nce

    def loss(reps):
        return info_nce(reps[0], reps[1], temperature=0.01)

    batches = [batch(n, seed), batch(n, seed + 1)]
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    if chunk:
        GradientCache(model, chunk_size=chunk).backward(batches, loss)
    else:
        full_batch_backward(model, batches, loss)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return time.perf_counter() - t0


def speed(args) -> None:
    rows = []
    for size in args.sizes.split(","):
        model = make_model(size)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for label, chunk in (("plain", 0), (f"gradcache chunk {args.chunk}", args.chunk)):
            train_step(model, opt, args.batch, chunk, seed=99)  # warm-up
            secs = [train_step(model, opt, args.batch, chunk, seed=s) for s in range(args.steps)]
            per = sorted(secs)[len(secs) // 2]
            row = {"size": size, "mode": label, "batch_pairs": args.batch, "step_s": round(per, 2),
                   "pairs_per_s": round(args.batch / per, 2), "tokens_per_s": round(2 * args.batch * LENGTH / per)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("| size | mode | pairs/step | s/step (median) | pairs/s | tokens/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['mode']} | {r['batch_pairs']} | {r['step_s']} | {r['pairs_per_s']} | "
              f"{r['tokens_per_s']} |")


def memory(args) -> None:
    model = make_model(args.size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    base = peak_rss_gib()
    secs = train_step(model, opt, args.batch, args.chunk, seed=0)
    print(json.dumps({"size": args.size, "batch_pairs": args.batch, "chunk": args.chunk, "step_s": round(secs, 1),
                      "rss_after_model_gib": round(base, 2), "peak_rss_gib": round(peak_rss_gib(), 2)}))


def loss_memory(args) -> None:
    from e5kit.model.pooling import l2_normalize
    from e5kit.train.loss import info_nce

    torch.manual_seed(0)
    q = l2_normalize(torch.randn(args.batch, args.dim)).requires_grad_()
    p = l2_normalize(torch.randn(args.batch, args.dim)).requires_grad_()
    t0 = time.perf_counter()
    out = info_nce(q, p, temperature=0.01)
    out.loss.backward()
    print(json.dumps({"batch_pairs": args.batch, "dim": args.dim, "seconds": round(time.perf_counter() - t0, 1),
                      "peak_rss_gib": round(peak_rss_gib(), 2)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--sizes", default="minilm,base")
    s.add_argument("--batch", type=int, default=32)
    s.add_argument("--chunk", type=int, default=16)
    s.add_argument("--steps", type=int, default=3)
    m = sub.add_parser("memory")
    m.add_argument("--size", default="base", choices=sorted(SIZES))
    m.add_argument("--batch", type=int, default=256)
    m.add_argument("--chunk", type=int, default=32)
    lm = sub.add_parser("loss-memory")
    lm.add_argument("--batch", type=int, default=32768)
    lm.add_argument("--dim", type=int, default=768)
    args = ap.parse_args()
    {"speed": speed, "memory": memory, "loss-memory": loss_memory}[args.cmd](args)


if __name__ == "__main__":
    main()
