"""Small synthetic evaluation sets (generated, not copied from any benchmark) written in e5kit's layouts."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

WORDS = ("protein cell cells water fire earth light dark big small run ran eat food summit definition women "
         "query passage what how why").split()


def sentence(rng: random.Random, n: int = 5) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_jsonl(path: Path, rows: list[dict], gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_beir(folder: Path, *, seed: int = 0, n_docs: int = 40, n_queries: int = 12, identical_ids: bool = False
              ) -> Path:
    """corpus.jsonl.gz, queries.jsonl, qrels/test.tsv; queries share words with their relevant docs.

    One extra query has no judgement (it must be dropped). With identical_ids, each query id equals
    the id of a document that repeats the query's text (the ArguAna situation).
    """
    rng = random.Random(seed)
    docs = [{"_id": f"d{i}", "title": sentence(rng, 2) if i % 3 else "", "text": sentence(rng, 12)}
            for i in range(n_docs)]
    queries, qrels = [], ["query-id\tcorpus-id\tscore"]
    for q in range(n_queries):
        rel = rng.sample(range(n_docs), 2)
        words = docs[rel[0]]["text"].split()[:4]
        qid = f"d{n_docs + q}" if identical_ids else f"q{q}"
        queries.append({"_id": qid, "text": " ".join(words)})
        if identical_ids:
            docs.append({"_id": qid, "title": "", "text": " ".join(words)})
        qrels += [f"{qid}\td{rel[0]}\t2", f"{qid}\td{rel[1]}\t1"]
    queries.append({"_id": "unjudged", "text": "water fire"})
    write_jsonl(folder / "corpus.jsonl.gz", docs, gz=True)
    write_jsonl(folder / "queries.jsonl", queries)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")
    return folder


def make_pairs(path: Path, *, seed: int = 0, n: int = 40, target: str = "score") -> Path:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a = sentence(rng, 6)
        keep = rng.randint(0, 5)  # never the identical sentence: exact-duplicate ties are batch-noise sensitive
        b = " ".join(a.split()[:keep] + [rng.choice(WORDS) for _ in range(6 - keep)])
        y = float(keep) * 5 / 6 if target == "score" else int(keep >= 3 if i % 7 else keep < 2)
        rows.append({"sentence1": a, "sentence2": b, target: y})
    return write_jsonl(path, rows, gz=True)


def make_labelled(path: Path, *, seed: int = 0, n: int = 60, labels: int = 3) -> Path:
    rng = random.Random(seed)
    topics = [WORDS[i * 5:(i + 1) * 5] for i in range(labels)]
    rows = [{"text": " ".join(rng.choice(topics[i % labels]) for _ in range(4)) + " " + sentence(rng, 2),
             "label": i % labels} for i in range(n)]
    return write_jsonl(path, rows, gz=True)
