"""Peak RSS while streaming many texts through `E5.iter_encode` (issue 7: <= model size + 1.5 GB).

Texts come from a generator (SciFact passages cycled, each made unique), never a list, and the
vectors go to a disk-backed array as they arrive, so memory can only grow if the engine itself
holds on to something. A small random BERT keeps the run short; the pipeline (tokenizer, chunk
buffers, batches) is the same for any model size.

    .venv/bin/python benchmarks/bench_encode_memory.py --texts 100000 --data ../shared/data
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def passages(data: Path | None, chars: int):
    if data is None:
        from e5kit.bench.checkpoints import synthetic_texts

        base = synthetic_texts(2000)
    else:
        with gzip.open(data / "scifact" / "corpus.jsonl.gz", "rt") as fh:
            base = [(d["title"] + " " + d["text"]) for d in map(json.loads, fh)]
    for i, text in enumerate(cycle(base)):
        yield f"{i} {text[:chars]}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=100_000)
    ap.add_argument("--chars", type=int, default=400, help="characters kept per passage")
    ap.add_argument("--data", default=None)
    ap.add_argument("--model", default=None, help="checkpoint; default a 2-layer random BERT with 512 positions")
    args = ap.parse_args()

    from e5kit import E5
    from e5kit.bench.checkpoints import make_random_bert
    from e5kit.bench.rss import PeakRss, rss_bytes

    work = Path(tempfile.mkdtemp(prefix="e5kit-mem-"))
    if args.model:
        path = Path(args.model)
    else:
        from e5kit.bench.checkpoints import default_minilm, has_minilm

        path = make_random_bert(work / "small-bert", default_minilm() if has_minilm() else None, layers=2,
                                hidden=128, heads=2, intermediate=512)
    model_mb = sum(f.stat().st_size for f in path.glob("*.safetensors")) / 2**20
    m = E5(path, device="cpu")
    base = rss_bytes()
    out = np.lib.format.open_memmap(work / "vectors.npy", mode="w+", dtype=np.float32, shape=(args.texts, m.dim))
    start, row, samples = time.perf_counter(), 0, []
    with PeakRss() as mem:
        for chunk in m.iter_encode(islice(passages(Path(args.data) if args.data else None, args.chars), args.texts),
                                   prefix="passage: "):
            out[row:row + len(chunk)] = chunk
            row += len(chunk)
            samples.append((row, round(rss_bytes() / 2**20)))
            print(f"{row} texts, RSS {samples[-1][1]} MB, peak {mem.peak / 2**20:.0f} MB", flush=True)
    took = time.perf_counter() - start
    stats = m.last_stats
    report = {
        "texts": row, "tokens": stats.tokens, "seconds": round(took, 1), "model_file_mb": round(model_mb, 1),
        "rss_after_load_mb": round(base / 2**20), "peak_rss_mb": round(mem.peak / 2**20),
        "growth_over_load_mb": round((mem.peak - base) / 2**20),
        "rss_by_texts_mb": samples[:: max(1, len(samples) // 12)],
        "budget_mb": round(model_mb + 1536), "within_budget": (mem.peak - base) / 2**20 <= 1536,
    }
    print(json.dumps(report, indent=1))
    return 0 if row == args.texts else 1


if __name__ == "__main__":
    sys.exit(main())
