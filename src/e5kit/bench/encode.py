"""Encoding benchmark: sentence-transformers vs every e5kit mode on the same texts, in one process.

Runs alternate (ST, mode 1, mode 2, ... then again) so that load from other processes hits all of
them alike; the best of `reps` is reported, and ratios are taken within the run. Besides texts/s
it reports real (non-padding) tokens/s, peak RSS, agreement with the fp32 reference, and model
FLOP/s as a fraction of the dense-matmul peak measured here for the same dtype. Both runners get the
same texts, with the model's passage prompt applied by its prompt policy.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from e5kit.bench.checkpoints import (
    default_minilm,
    has_minilm,
    make_random_bert,
    make_random_xlmr,
    scifact_passages,
    synthetic_texts,
)
from e5kit.bench.measure import cpu_info, cpu_line, encoder_flops, matmul_peak, sync
from e5kit.bench.rss import PeakRss
from e5kit.encode.batching import batch_budget
from e5kit.options import positive_int

MODES_CPU = ("fp32", "bf16", "int8", "ov-fp32", "ov-bf16", "ov-int8", "ov-int8w")
ST_BACKENDS_CPU = ("onnx", "openvino", "openvino-int8")  # besides the torch reference, which always runs
MODES_GPU = ("fp32", "fp16", "bf16", "fp16-jagged", "fp16-hf")
SIZES = ("minilm", "base", "xlmr-base")
DEFAULT_SIZES = ("minilm", "base")  # `--size both`; xlmr-base (multilingual-e5-base shape) when asked for
DEFAULT_TEXTS = {"minilm": 200, "base": 24, "xlmr-base": 24}


# -- runners --------------------------------------------------------------------------------
@dataclass
class Runner:
    """One way of encoding: a name, its dtype for the peak, and a callable texts -> (n, d) float32."""

    name: str
    dtype: torch.dtype
    encode: Callable[[list[str]], np.ndarray]
    model: Any = None  # the E5 behind an e5kit runner
    st: Any = None  # the SentenceTransformer (or RemoteSt) behind a sentence-transformers runner

    def own_clock(self) -> dict[str, float] | None:
        """The last call as measured by the process that ran it, when that is not this one (RemoteSt)."""
        return getattr(self.st, "last", None) or None

    def close(self) -> None:
        if hasattr(self.st, "close"):
            self.st.close()


def st_runner(path: str | Path, device: torch.device, batch_size: int, max_len: int,
              dtype: torch.dtype = torch.float32, backend: str = "torch", work_dir: Path | None = None,
              python: Path | None = None) -> Runner:
    """sentence-transformers `encode` with its defaults (batch 32, its own length sort) on `backend`,
    in this process or, with `python`, in a worker run by that Python (see st_backends.RemoteSt).

    Raises StBackendMissing (with the reason) when that backend's packages do not load there.
    """
    from e5kit.bench.st_backends import RemoteSt, st_model

    if python is not None:
        if dtype != torch.float32:
            raise ValueError("a sentence-transformers worker runs float32 only")
        st = RemoteSt(python, path, backend, max_len, threads=torch.get_num_threads(), work_dir=work_dir,
                      device=str(device))
    else:
        st = st_model(path, backend, str(device), max_len, work_dir)
    if dtype != torch.float32:
        st = st.to(dtype)
    name = "sentence-transformers" + ("" if dtype == torch.float32 else f" {str(dtype).split('.')[-1]}")
    name += "" if backend == "torch" else f" {backend}"
    # int8 rows have no measured GEMM peak to be a fraction of (see e5kit_runner)
    row_dtype = torch.int8 if backend.endswith("int8") else dtype
    runner = Runner(name, row_dtype, lambda texts: st.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                                              show_progress_bar=False, convert_to_numpy=True))
    runner.st = st
    return runner


def load_mode(path: str | Path, mode: str, device: torch.device, max_tokens: int | None = None,
              max_len: int | None = None) -> Any:
    """An E5 in `mode`: a precision (ov-* included), optionally with '-hf' (padded HF model) or '-jagged' backend."""
    from e5kit import E5
    from e5kit.encode.precision import DTYPES, PRECISIONS
    from e5kit.model.encoder import TransformerEncoder

    precision, _, backend = (mode, "", "") if mode in PRECISIONS else mode.partition("-")
    kwargs = {"max_tokens_per_batch": max_tokens} if max_tokens else {}
    m = E5(path, device=str(device), precision=precision, max_seq_length=max_len, **kwargs)
    if backend:
        enc = m.engine.encoder
        m.engine.encoder = TransformerEncoder(enc.model, enc.pad_id, m.checkpoint.pooling, device,
                                              DTYPES[m.precision], backend=backend, int8=m.precision == "int8")
    return m


def e5kit_runner(path: str | Path, mode: str, device: torch.device, max_tokens: int | None, max_len: int) -> Runner:
    """e5kit in `mode` (see `load_mode`), encoding texts as given; `max_tokens` None: its default budget."""
    from e5kit.encode.precision import DTYPES

    m = load_mode(path, mode, device, max_tokens, max_len)
    # int8 GEMMs have their own peak, which is not measured: int8 rows print "n/a", not a fraction of fp32's
    dtype = torch.int8 if "int8" in m.precision else DTYPES[m.precision.removeprefix("ov-")]
    return Runner(f"e5kit {mode}", dtype, lambda texts: m.encode(texts, show_progress=False), m)


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
    encode_rss_mb: float = 0.0  # peak RSS during encode minus RSS before it: what encoding itself needs
    ratio_to_st_cpu: float = 0.0
    all_seconds: list[float] = field(default_factory=list)


@dataclass
class _Timings:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss: int = 0
    rss_delta: int = 0
    vectors: np.ndarray | None = None


def _time_once(r: Runner, texts: list[str], device: torch.device, t: _Timings) -> float:
    import time

    gc.collect()
    with PeakRss() as mem:
        sync(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        t.vectors = r.encode(texts)
        sync(device)
        took = time.perf_counter() - start
    cpu, peak, start_rss = time.process_time() - cpu_start, mem.peak, mem.start
    own = r.own_clock()  # a worker process: its own figures, not this (waiting) process's
    if own:
        took, cpu, peak, start_rss = own["wall"], own["cpu"], own["peak_rss"], own["start_rss"]
    t.wall.append(took)
    t.cpu.append(cpu)
    t.rss = max(t.rss, peak)
    t.rss_delta = max(t.rss_delta, peak - start_rss)
    return took


def run_speed(runners: Sequence[Runner], texts: list[str], *, lengths: Sequence[int], config: Any,
              device: torch.device, reps: int = 2, peaks: dict[str, float] | None = None,
              log: Callable[[str], None] = print) -> list[Row]:
    """Time every runner on `texts`, alternating, best of `reps` after one warm-up batch each."""
    tokens, flops, peaks = int(sum(lengths)), encoder_flops(config, lengths), peaks or {}
    timings = {r.name: _Timings() for r in runners}
    for r in runners:
        r.encode(texts[: min(8, len(texts))])  # warm-up: lazy init, kernels, allocator
    for rep in range(reps):
        for r in runners:
            took = _time_once(r, texts, device, timings[r.name])
            log(f"  rep {rep + 1}/{reps} {r.name:<28} {len(texts) / took:8.1f} texts/s")
        for name in list(peaks):  # re-measure between reps: under load the first peak can be far too low
            if peaks[name] == peaks[name]:
                peaks[name] = max(peaks[name], matmul_peak(getattr(torch, name), device))
    ref = timings[runners[0].name].vectors
    rows = []
    for r in runners:
        t = timings[r.name]
        best, dt = min(t.wall), str(r.dtype).split(".")[-1]
        peak = peaks.get(dt, float("nan"))
        rows.append(Row(r.name, dt, best, len(texts) / best, tokens / best, peak_rss_mb=t.rss / 2**20,
                        flops_per_s=flops / best, peak_fraction=flops / best / peak if peak == peak else float("nan"),
                        max_abs_diff=float(np.abs(t.vectors - ref).max()),
                        min_cosine=float((t.vectors * ref).sum(axis=1).min()),
                        cpu_seconds=min(t.cpu), encode_rss_mb=t.rss_delta / 2**20, all_seconds=t.wall))
    for row in rows:
        row.ratio_to_st = rows[0].seconds / row.seconds
        row.ratio_to_st_cpu = rows[0].cpu_seconds / row.cpu_seconds if row.cpu_seconds else float("nan")
    return rows


# -- the whole run --------------------------------------------------------------------------
@dataclass
class EncodeBenchSettings:
    """What `e5kit bench` runs; checked by `check()` before any model is loaded."""

    sizes: Sequence[str] = DEFAULT_SIZES
    data_dir: Path | None = None  # scifact/ for texts (and sts/ for --quality); None: synthetic texts
    n_texts: int | None = None
    reps: int = 2
    modes: Sequence[str] | None = None
    st_backends: Sequence[str] | None = None  # besides ST torch; None: onnx, openvino, openvino-int8 on CPU
    st_python: str | Path | None = None  # runs those backends (see st_backends.resolve_st_python)
    device: str | None = None
    model: Path | None = None  # checkpoint for the minilm size (default: the gt package)
    st_batch: int = 32
    batch_tokens: int | None = None  # e5kit's token budget per batch; None: its default for the device
    quality: bool = False
    quality_docs: int | None = None
    work_dir: Path | None = None

    def check(self) -> EncodeBenchSettings:
        from e5kit.bench.st_worker import ST_BACKENDS

        bad = [s for s in self.sizes if s not in SIZES]
        if bad or not self.sizes:
            raise ValueError(f"sizes {list(self.sizes)!r}: each must be one of {', '.join(SIZES)}")
        bad = [b for b in self.st_backends or () if b not in ST_BACKENDS[1:]]
        if bad:
            raise ValueError(f"sentence-transformers backends {bad!r}: each must be one of "
                             f"{', '.join(ST_BACKENDS[1:])} (torch always runs, as the reference)")
        for name in ("reps", "st_batch", "batch_tokens", "n_texts", "quality_docs"):
            value = getattr(self, name)
            if value is not None:
                positive_int(name, value)
        if self.data_dir is not None and not (Path(self.data_dir) / "scifact" / "corpus.jsonl.gz").is_file():
            raise ValueError(f"data folder {self.data_dir}: no scifact/corpus.jsonl.gz there")
        if self.quality and self.data_dir is None:
            raise ValueError("quality needs the data folder (SciFact and STS Benchmark): pass --data")
        from e5kit.bench.st_backends import resolve_st_python

        resolve_st_python(self.st_python)  # a bad path fails here, before any model loads
        return self


def _size_checkpoint(size: str, s: EncodeBenchSettings, tmp: Path) -> tuple[Path, int]:
    if size == "minilm":
        return (Path(s.model) if s.model else default_minilm()), 256
    if size == "xlmr-base":
        return make_random_xlmr(tmp / "xlmr-base-random"), 512
    tok_from = s.model or (default_minilm() if has_minilm() else None)
    return make_random_bert(tmp / "bert-base-random", tok_from), 512


def default_modes(dev: torch.device) -> tuple[list[str], list[dict[str, str]]]:
    """The e5kit modes a bench runs when none are named, and those left out on this CPU with the reason.

    Without bf16 instructions torch emulates bf16 matmuls (1 GFLOP/s vs 101-154 fp32 on an AVX2-only EPYC)
    and OpenVINO ignores its bf16 hint: by default those rows are skipped there.
    """
    from e5kit.encode.precision import BF16_MODES, cpu_has_fast_bf16

    if dev.type == "cuda":
        return list(MODES_GPU), []
    if cpu_has_fast_bf16():
        return list(MODES_CPU), []
    reason = ("this CPU has no bf16 instructions (AVX512-BF16 or AMX): torch emulates bf16 matmuls and OpenVINO "
              "runs its bf16 hint in f32; name it in --modes to measure it anyway")
    return ([m for m in MODES_CPU if m not in BF16_MODES],
            [{"name": f"e5kit {m}", "reason": reason} for m in MODES_CPU if m in BF16_MODES])


def _make_runners(path: Path, s: EncodeBenchSettings, dev: torch.device, max_len: int,
                  tmp: Path) -> tuple[list[Runner], list[dict[str, str]]]:
    """ST torch first (the reference), then the other ST backends and e5kit modes; those that cannot run
    here are returned as {"name", "reason"} instead of failing the whole run."""
    from e5kit.bench.st_backends import HERE, StBackendMissing, resolve_st_python

    python = resolve_st_python(s.st_python)
    # On CPU the reference runs as a user runs it, in a process of its own (this Python, so e5kit's transformers):
    # the heap and caches of the e5kit models loaded here neither slow nor speed it (in one process it ran 29.8 or
    # 33.3 texts/s depending on how many rows shared the process). --st-python here keeps it in this process.
    ref_python = Path(sys.executable) if dev.type == "cpu" and str(s.st_python) != HERE else None
    runners = [st_runner(path, dev, s.st_batch, max_len, work_dir=tmp, python=ref_python)]
    skipped: list[dict[str, str]] = []
    backends = s.st_backends if s.st_backends is not None else (ST_BACKENDS_CPU if dev.type == "cpu" else ())
    for backend in backends:
        try:
            runners.append(st_runner(path, dev, s.st_batch, max_len, backend=backend, work_dir=tmp, python=python))
        except StBackendMissing as exc:
            skipped.append({"name": f"sentence-transformers {backend}", "reason": str(exc)})
    modes, skipped_modes = default_modes(dev) if not s.modes else (list(s.modes), [])
    skipped += skipped_modes
    for mode in modes:
        try:
            runners.append(e5kit_runner(path, mode, dev, s.batch_tokens, max_len))
        except ValueError as exc:
            if "OpenVINO" not in str(exc):  # a bad mode name is the caller's error, not a skip
                raise
            skipped.append({"name": f"e5kit {mode}", "reason": str(exc)})
    return runners, skipped


def _bench_size(size: str, s: EncodeBenchSettings, dev: torch.device, peaks: dict[str, float], tmp: Path,
                log: Callable[[str], None]) -> dict[str, Any]:
    from transformers import AutoConfig

    from e5kit.bench.quality import quality_table
    from e5kit.bench.report import markdown_table, quality_markdown

    path, max_len = _size_checkpoint(size, s, tmp)
    n = s.n_texts or DEFAULT_TEXTS[size]
    raw = scifact_passages(s.data_dir, n) if s.data_dir else synthetic_texts(n)
    runners, skipped = _make_runners(path, s, dev, max_len, tmp)
    with contextlib.ExitStack() as stack:  # sentence-transformers workers stop whatever happens
        for r in runners:
            stack.callback(r.close)
        for skip in skipped:
            log(f"  skipped {skip['name']}: {skip['reason']}")
        policy = next((r.model.policy for r in runners if r.model is not None), None)
        texts = [policy.add(t, policy.prefix_for("passage")) for t in raw] if policy else raw  # same texts for all
        log(f"\n== {size}: {path.name}, max length {max_len}, {len(texts)} texts, reps {s.reps}")
        lengths = _lengths(path, texts, max_len)
        rows = run_speed(runners, texts, lengths=lengths, config=AutoConfig.from_pretrained(path), device=dev,
                         reps=s.reps, peaks=peaks, log=log)
        entry: dict[str, Any] = {"model": str(path), "max_length": max_len, "texts": len(texts),
                                 "real_tokens": int(sum(lengths)), "rows": [asdict(r) for r in rows],
                                 "skipped": skipped, "table": markdown_table(rows, skipped)}
        for key, remote in (("st_reference_env", runners[0].st), ("st_env", next(
                (r.st for r in runners[1:] if getattr(r.st, "versions", None)), None))):
            if getattr(remote, "versions", None):  # sentence-transformers rows that ran in worker processes
                entry[key] = {"python": remote.python, **remote.versions}
                what = "reference" if key == "st_reference_env" else "backends"
                log(f"  sentence-transformers {what} ran in " + ", ".join(f"{k} {v}" for k, v in entry[key].items()))
        log(entry["table"])
        if s.quality and size == "minilm":
            q = quality_table(_quality_loader(runners, path, dev, policy), [r.name for r in runners], Path(s.data_dir),
                              max_docs=s.quality_docs, log=log)
            entry.update(quality_docs=s.quality_docs or "all", quality=q, quality_table=quality_markdown(q))
            log(entry["quality_table"])
        return entry


def _quality_loader(runners: Sequence[Runner], path: Path, dev: torch.device, policy: Any) -> Callable[[str], Any]:
    """Runner name -> a model eval can score: the runner's own E5, or its SentenceTransformer seen as one.

    The first runner (sentence-transformers torch fp32) is the reference every other row is compared to.
    """
    from e5kit.bench.st_backends import StAsE5

    by_name = {r.name: r for r in runners}

    def load(name: str) -> Any:
        r = by_name[name]
        return r.model if r.model is not None else StAsE5(r.st, policy, f"{path.name} ({name})")

    del dev
    return load


def run_encode_bench(settings: EncodeBenchSettings, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Both model sizes (or those asked for): speed rows, peaks, and optionally the quality table."""
    from e5kit.encode.precision import resolve_device
    from e5kit.encode.threads import configure_threads

    s = settings.check()
    dev = resolve_device(s.device)
    logging.getLogger("e5kit").setLevel(logging.ERROR)  # truncation notices for every run are noise here
    threads = configure_threads()
    peaks = {str(dt).split(".")[-1]: matmul_peak(dt, dev) for dt in (torch.float32, torch.bfloat16, torch.float16)}
    cpu = cpu_info()
    budget = batch_budget(dev.type, s.batch_tokens, name="batch_tokens")
    native = native_attention_line(dev)
    log(f"device {dev}, torch threads {threads}; CPU {cpu_line(cpu)}; native attention: {native}; matmul peak GFLOP/s: "
        + ", ".join(f"{k} {v / 1e9:,.0f}" for k, v in peaks.items() if v == v)
        + f"; e5kit batches <= {budget} padded tokens, sentence-transformers {s.st_batch} texts")
    result: dict[str, Any] = {"device": str(dev), "threads": threads, "cpu": cpu, "native_attention": native,
                              "peaks": peaks,
                              "e5kit_batch_tokens": budget, "st_batch": s.st_batch,
                              "modes": list(s.modes or default_modes(dev)[0]),
                              "reps": s.reps, "sizes": {}}
    tmp = Path(s.work_dir or tempfile.mkdtemp(prefix="e5kit-bench-"))
    for size in s.sizes:
        result["sizes"][size] = _bench_size(size, s, dev, peaks, tmp, log)
        gc.collect()
    return result


def native_attention_line(dev: torch.device) -> str:
    """'bf16 on, fp32 on (head sizes 32, 64)' or with 'off: <why>': whether e5kit's own kernels run here."""
    from e5kit.model import native_attention

    if dev.type != "cpu":
        return f"off: {dev.type} runs torch's SDPA"
    parts = []
    for dtype in (torch.bfloat16, torch.float32):
        reason = native_attention.status(dtype)
        parts.append(f"{str(dtype).removeprefix('torch.')} "
                     + (f"on ({native_attention.kernel_isa(dtype)})" if reason is None else f"off ({reason})"))
    return "; ".join(parts) + " (head sizes " + ", ".join(map(str, native_attention.HEAD_DIMS)) + ")"


def _lengths(path: Path, texts: list[str], max_len: int) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    return [len(x) for x in tok(texts, truncation=True, max_length=max_len)["input_ids"]]
