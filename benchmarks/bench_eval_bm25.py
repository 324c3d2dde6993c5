"""Choose the BM25 library by measurement: SciFact nDCG@10 and time, bm25s (e5kit.index.bm25) vs rank_bm25.

Both get the same analyzed tokens (lower-case, \\w+ tokens, Lucene's English stopwords, Porter
stemmer) and Anserini's k1=0.9, b=0.4; the reference is Anserini's BEIR flat index, 0.6789.
rank_bm25's BM25Okapi has its own idf (floored by epsilon) and Robertson's tf normalisation.

    .venv/bin/python benchmarks/bench_eval_bm25.py [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import time

ANSERINI_FLAT = 0.6789


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()

    from e5kit.eval.metrics.retrieval import retrieval_scores
    from e5kit.eval.registry import get_dataset
    from e5kit.index.bm25 import Analyzer, BM25Index
    from e5kit.model.prompts import passage_text

    data = get_dataset("scifact", args.data_dir).load()["data"]
    texts = [passage_text(d, i) for i, d in enumerate(data.corpus)]
    rows = []

    t0 = time.perf_counter()
    index = BM25Index.build(data.corpus_ids, texts, show_progress=False)
    t1 = time.perf_counter()
    scores, ids = index.search(data.queries, 1000, show_progress=False)
    t2 = time.perf_counter()
    run = {q: dict(zip(ids[i], map(float, scores[i]), strict=True)) for i, q in enumerate(data.query_ids)}
    rows.append(("bm25s (e5kit.index.bm25)", retrieval_scores(data.qrels, run)["ndcg_at_10"], t1 - t0, t2 - t1))

    try:
        import numpy as np
        from rank_bm25 import BM25Okapi
    except ImportError:
        print("rank_bm25 not installed: pip install rank-bm25 to compare")
    else:
        tok = Analyzer("porter", "en")
        t0 = time.perf_counter()
        doc_tokens = [tok.terms(t) for t in texts]
        okapi = BM25Okapi(doc_tokens, k1=0.9, b=0.4)
        t1 = time.perf_counter()
        q_tokens = [tok.terms(q) for q in data.queries]
        run = {}
        for q, toks in zip(data.query_ids, q_tokens, strict=True):
            s = okapi.get_scores(toks)
            top = np.argsort(-s, kind="stable")[:1000]
            run[q] = {data.corpus_ids[j]: float(s[j]) for j in top}
        t2 = time.perf_counter()
        rows.append(("rank_bm25 BM25Okapi", retrieval_scores(data.qrels, run)["ndcg_at_10"], t1 - t0, t2 - t1))

    print(f"SciFact test: {len(data.query_ids)} queries, {len(texts)} docs; Anserini flat nDCG@10 {ANSERINI_FLAT}")
    print(f"{'library':28} {'nDCG@10':>8} {'diff':>7} {'index s':>8} {'search s':>9}")
    for name, ndcg, ti, ts in rows:
        print(f"{name:28} {ndcg:8.4f} {ndcg - ANSERINI_FLAT:+7.4f} {ti:8.2f} {ts:9.2f}")
    if len(rows) == 2:
        print(f"search time ratio rank_bm25 / bm25s: {rows[1][3] / rows[0][3]:.1f}x")


if __name__ == "__main__":
    main()
