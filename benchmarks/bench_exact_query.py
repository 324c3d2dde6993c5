"""Latency of one exact top-10 query over 1 M x 384 float32 unit vectors held in memory (e5kit.index.exact).

    .venv/bin/python benchmarks/bench_exact_query.py [--n 1000000] [--dim 384] [--queries 20]

Prints the median and minimum single-query latency and the per-query cost of one batch of all queries.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from e5kit.index.exact import topk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    for q in queries[:2]:  # warm-up
        topk(q, corpus, 10)
    times = []
    for q in queries:
        start = time.perf_counter()
        topk(q, corpus, 10)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    topk(queries, corpus, 10)
    batch = time.perf_counter() - start
    print(f"exact top-10 over {args.n:,} x {args.dim}: one query median {1000 * np.median(times):.1f} ms, "
          f"min {1000 * min(times):.1f} ms ({args.queries} queries); batch of {args.queries}: "
          f"{1000 * batch / args.queries:.1f} ms/query")


if __name__ == "__main__":
    main()
