"""Gradient caching (Gao et al. 2021): a contrastive batch of any size at the memory of one chunk.

Pass 1 embeds every chunk without a graph (remembering each chunk's RNG state, so dropout repeats);
the loss and its gradients w.r.t. the embeddings are computed on the whole batch; pass 2 re-runs each
chunk with a graph and back-propagates the cached embedding gradients. Parameter gradients equal a
plain full-batch backward (tests/train/test_gradcache.py); compute is about 2x a plain forward.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from e5kit.model.pooling import POOLERS, l2_normalize
from e5kit.train.loss import ContrastiveOutput

TokenBatch = dict[str, torch.Tensor]  # {"input_ids": (B, T), "attention_mask": (B, T)}
LossFn = Callable[[list[torch.Tensor]], ContrastiveOutput]


def embed(model: torch.nn.Module, batch: TokenBatch, *, autocast_dtype: torch.dtype | None = None,
          pooling: str = "mean") -> torch.Tensor:
    """E5 embeddings (B, H) in fp32: mean over real tokens (or the model's own pooling, e.g. the last token
    of a decoder), L2-normalised (the model card's recipe)."""
    device_type = batch["input_ids"].device.type
    with torch.autocast(device_type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    return l2_normalize(POOLERS[pooling](hidden.float(), batch["attention_mask"]))  # (B, H)


def chunks(batch: TokenBatch, size: int) -> Iterator[TokenBatch]:
    """Row chunks of `batch`, each trimmed to its own longest sequence (less padding per chunk)."""
    n = batch["input_ids"].shape[0]
    for start in range(0, n, size or n):
        ids = batch["input_ids"][start:start + (size or n)]
        mask = batch["attention_mask"][start:start + (size or n)]
        width = int(mask.sum(dim=1).max().item()) if mask.numel() else 0
        yield {"input_ids": ids[:, :width], "attention_mask": mask[:, :width]}


@dataclass
class _RngState:
    cpu: torch.Tensor
    cuda: list[torch.Tensor]

    @classmethod
    def capture(cls, device: torch.device) -> _RngState:
        cuda = [torch.cuda.get_rng_state(device)] if device.type == "cuda" else []
        return cls(torch.get_rng_state(), cuda)

    @contextlib.contextmanager
    def replay(self, device: torch.device) -> Iterator[None]:
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.cpu)
            if devices:
                torch.cuda.set_rng_state(self.cuda[0], device)
            yield


class GradientCache:
    """One optimisation step's gradients for a contrastive loss over several token batches.

    `model` may be wrapped in DistributedDataParallel: every chunk but the last runs under
    `no_sync()`, so gradients are all-reduced once per step.
    """

    def __init__(self, model: torch.nn.Module, *, chunk_size: int, autocast_dtype: torch.dtype | None = None,
                 pooling: str = "mean") -> None:
        if chunk_size < 0:
            raise ValueError(f"chunk_size must be >= 0 (0 = one chunk), got {chunk_size}")
        self.model = model
        self.pooling = pooling
        self.chunk_size = chunk_size
        self.autocast_dtype = autocast_dtype

    def _sync(self, last: bool) -> contextlib.AbstractContextManager:
        no_sync = getattr(self.model, "no_sync", None)
        return contextlib.nullcontext() if last or no_sync is None else no_sync()

    def backward(self, batches: Sequence[TokenBatch], loss_fn: LossFn) -> ContrastiveOutput:
        """Accumulate parameter gradients of loss_fn([embeddings of each batch]) into .grad; return the loss."""
        if not batches:
            raise ValueError("no token batches given")
        reps, states = [], []
        with torch.no_grad():  # pass 1: embeddings only
            for batch in batches:
                parts = []
                for chunk in chunks(batch, self.chunk_size):
                    states.append(_RngState.capture(chunk["input_ids"].device))
                    parts.append(embed(self.model, chunk, autocast_dtype=self.autocast_dtype, pooling=self.pooling))
                reps.append(torch.cat(parts).requires_grad_())
        out = loss_fn(reps)
        out.loss.backward()  # gradients w.r.t. the cached embeddings only
        cached = [r.grad for r in reps]
        todo = [(chunk, grad) for batch, g in zip(batches, cached, strict=True)
                for chunk, grad in zip(chunks(batch, self.chunk_size),
                                       torch.split(g, self.chunk_size or g.shape[0]), strict=True)]
        for i, ((chunk, grad), state) in enumerate(zip(todo, states, strict=True)):  # pass 2: with a graph
            with self._sync(last=i == len(todo) - 1), state.replay(chunk["input_ids"].device):
                emb = embed(self.model, chunk, autocast_dtype=self.autocast_dtype, pooling=self.pooling)
                torch.dot(emb.flatten(), grad.flatten()).backward()
        return ContrastiveOutput(out.loss.detach(), out.accuracy)


def full_batch_backward(model: torch.nn.Module, batches: Sequence[TokenBatch], loss_fn: LossFn, *,
                        autocast_dtype: torch.dtype | None = None, pooling: str = "mean") -> ContrastiveOutput:
    """The plain computation: every batch embedded with a graph, one backward (memory grows with the batch)."""
    reps = [embed(model, b, autocast_dtype=autocast_dtype, pooling=pooling) for b in batches]
    out = loss_fn(reps)
    out.loss.backward()
    return ContrastiveOutput(out.loss.detach(), out.accuracy)
