"""SciFact TEST nDCG@10 of a model from a finished e5kit index of the corpus (docs/finetune.md).

    python benchmarks/finetune_scifact_score.py INDEX_FOLDER [--data DATA/scifact]

The index is built beforehand with the model to score, e.g. by four processes at once:
    e5kit index build DATA/scifact -o IDX --model M --shard-size 1296 --shard I/4      # I = 0..3
Exact (float) dense search of the 300 test queries, top 100, scored by e5kit's evaluator (pytrec_eval), so the
figure is `e5kit eval --tasks scifact`'s at the index's precision and max length (all-MiniLM-L6-v2 fp32 at 256
tokens: 0.6451 either way, docs/bench-index.md). Splitting the corpus encoding over processes is the only reason
for this script: on a CPU shared by many jobs, one process gets one share.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("index", help="a complete e5kit index of the SciFact corpus")
    ap.add_argument("--data", default=str(DATA), help="the SciFact BEIR folder (its test qrels and queries)")
    args = ap.parse_args()

    from e5kit.eval.datasets import load_beir
    from e5kit.eval.metrics.retrieval import retrieval_scores
    from e5kit.index.search import index_model, search
    from e5kit.index.store import DenseIndex

    data = load_beir(args.data, "test")
    dense = DenseIndex.open(args.index)
    model = index_model(args.index)  # the model, precision and max length that built the index
    t0 = time.perf_counter()
    hits = search(dense, data.queries, k=100, model=model)
    run = {q: {h.id: float(h.score) for h in hs} for q, hs in zip(data.query_ids, hits, strict=True)}
    scores = retrieval_scores(data.qrels, run, (10, 100))
    print(json.dumps({"index": str(args.index), "model": dense.settings.model, "precision": model.precision,
                      "max_seq_length": model.max_seq_length, "docs": len(dense), "queries": len(data.query_ids),
                      "ndcg_at_10": round(scores["ndcg_at_10"], 4), "recall_at_100": round(scores["recall_at_100"], 4),
                      "search_s": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
