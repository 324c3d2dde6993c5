"""The encode loop: tokenize once, batch by token budget, run, restore input order."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
import torch

from e5kit.encode.batching import TokenBudgetBatcher
from e5kit.encode.memory import limit_heap_growth, trim_heap
from e5kit.encode.threads import configure_threads
from e5kit.model.encoder import TransformerEncoder
from e5kit.model.tokenize import TextTokenizer

log = logging.getLogger("e5kit")

CHUNK_TEXTS = 8192  # texts tokenized and sorted together; bounds memory for streamed input
CHUNK_TEXTS_CUDA = 2048  # smaller on GPU: tokenizing the next chunk overlaps the current one
TOKENIZE_TEXTS = 1024  # texts per tokenizer call: its Encoding objects are large, so they are dropped at once
PROGRESS_MIN_TEXTS = 256


@dataclass
class EncodeStats:
    """What one encode call did: counts for logs, results and tokens/s."""

    texts: int = 0
    tokens: int = 0  # real (non-padding) tokens, special tokens included
    padded_tokens: int = 0
    truncated: int = 0
    batches: int = 0
    seconds: float = 0.0
    max_length: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def add(self, other: EncodeStats) -> None:
        for name in ("texts", "tokens", "padded_tokens", "truncated", "batches", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _progress(total: int, show: bool | None, desc: str):
    if show is None:
        show = total >= PROGRESS_MIN_TEXTS and sys.stderr.isatty()
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="text", dynamic_ncols=True, leave=False)


class EncodeEngine:
    """Tokenizer + encoder + batcher: texts in, float32 (n, dim) embeddings out, in input order."""

    def __init__(self, tokenizer: TextTokenizer, encoder: TransformerEncoder, batcher: TokenBudgetBatcher,
                 dim: int) -> None:
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.batcher = batcher
        self.dim = dim
        configure_threads()
        limit_heap_growth()

    def tokenize_compact(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
        """All token ids of `texts` as one int32 array + offsets (n+1,), and how many were truncated.

        A chunk of 8k long texts as Python lists of ints would cost ~0.5 GB; as int32 it is ~16 MB.
        """
        parts: list[np.ndarray] = []
        lengths = np.zeros(len(texts), dtype=np.int64)
        truncated = 0
        for start in range(0, len(texts), TOKENIZE_TEXTS):
            tok = self.tokenizer(texts[start:start + TOKENIZE_TEXTS])
            truncated += tok.truncated
            for j, seq in enumerate(tok.ids):
                lengths[start + j] = len(seq)
                parts.append(np.asarray(seq, dtype=np.int32))
        offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
        return flat, offsets, truncated

    def encode_chunk(self, texts: Sequence[str], *, normalize: bool, bar=None,
                     tokens: tuple[np.ndarray, np.ndarray, int] | None = None) -> tuple[np.ndarray, EncodeStats]:
        """Embeddings of one in-memory chunk of texts (optionally already tokenized), with what it cost.

        On CUDA the vectors stay on the GPU until the chunk ends, so no batch waits for a copy and
        the CPU keeps queueing work ahead of the GPU.
        """
        start = time.perf_counter()
        flat, offsets, truncated = tokens if tokens is not None else self.tokenize_compact(texts)
        lengths = np.diff(offsets).tolist()
        on_gpu = self.encoder.device.type == "cuda"
        out = (torch.empty((len(texts), self.dim), dtype=torch.float32, device=self.encoder.device) if on_gpu
               else np.empty((len(texts), self.dim), dtype=np.float32))
        stats = EncodeStats(texts=len(texts), tokens=sum(lengths), truncated=truncated,
                            max_length=self.tokenizer.max_length)
        for batch in self.batcher.batches(lengths):
            ids = [flat[offsets[i]:offsets[i + 1]] for i in batch]
            if on_gpu:
                rows = torch.as_tensor(batch).to(self.encoder.device, non_blocking=True)
                out[rows] = self.encoder.embed(ids, normalize=normalize, to_cpu=False)
            else:
                # No heap trim per batch: the next batch reuses the freed activations; a trim would hand them
                # back and every layer would page-fault them in again (the chunk loop trims instead).
                out[batch] = self.encoder.embed(ids, normalize=normalize).numpy()
            stats.batches += 1
            stats.padded_tokens += len(batch) * max(lengths[i] for i in batch)
            if bar is not None:
                bar.update(len(batch))
        result = out.cpu().numpy() if on_gpu else out
        stats.seconds = time.perf_counter() - start
        return result, stats

    def iter_encode(self, texts: Iterable[str], *, normalize: bool = True, show_progress: bool | None = None,
                    total: int | None = None, chunk_size: int | None = None,
                    stats: EncodeStats | None = None) -> Iterator[np.ndarray]:
        """Stream embeddings chunk by chunk; memory is bounded by `chunk_size`, not by the input.

        On CUDA the next chunk is tokenized in a thread (the Rust tokenizer releases the GIL)
        while the GPU encodes the current one, and chunks are smaller so that overlap starts early.
        """
        stats = stats if stats is not None else EncodeStats()
        on_gpu = self.encoder.device.type == "cuda"
        chunk_size = chunk_size or (CHUNK_TEXTS_CUDA if on_gpu else CHUNK_TEXTS)
        bar = _progress(total if total is not None else 0, show_progress if total else False, "encode")
        iterator = iter(texts)
        pool = ThreadPoolExecutor(max_workers=1) if on_gpu else None
        try:
            chunk = list(islice(iterator, chunk_size))
            pending = pool.submit(self.tokenize_compact, chunk) if pool and chunk else None
            while chunk:
                tokens = pending.result() if pending is not None else None
                following = list(islice(iterator, chunk_size))
                pending = pool.submit(self.tokenize_compact, following) if pool and following else None
                vectors, chunk_stats = self.encode_chunk(chunk, normalize=normalize, bar=bar, tokens=tokens)
                stats.add(chunk_stats)
                del tokens
                trim_heap()  # once per chunk: without it glibc's fragmented heap grows RSS chunk after chunk
                yield vectors
                chunk = following
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            if bar is not None:
                bar.close()
            stats.max_length = self.tokenizer.max_length
            if stats.truncated:
                log.warning("%d of %d inputs were longer than %d tokens and were truncated",
                            stats.truncated, stats.texts, self.tokenizer.max_length)

    def encode(self, texts: Sequence[str], *, normalize: bool = True, show_progress: bool | None = None,
               stats: EncodeStats | None = None) -> np.ndarray:
        """All embeddings as one (n, dim) float32 array."""
        parts = list(self.iter_encode(texts, normalize=normalize, show_progress=show_progress,
                                      total=len(texts), stats=stats))
        if not parts:
            return np.empty((0, self.dim), dtype=np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
