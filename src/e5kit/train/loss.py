"""InfoNCE over in-batch negatives (E5 pre-training), with the symmetric and hard-negative options."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ContrastiveOutput:
    loss: torch.Tensor  # scalar, differentiable
    accuracy: float  # share of queries whose own passage scores highest (in-batch accuracy)


def info_nce(q: torch.Tensor, p: torch.Tensor, *, negatives: torch.Tensor | None = None,
             temperature: float = 0.01, symmetric: bool = False) -> ContrastiveOutput:
    """Loss of query i picking passage i among all passages (and hard negatives) of the batch.

    q, p: (B, H) L2-normalised embeddings; negatives: (B * k, H), the k hard negatives of query i in
    rows i*k .. i*k+k-1 (they are candidates for every query, as further in-batch negatives).
    Score = cos / temperature (E5 uses 0.01). `symmetric` adds the passage -> query term and averages.
    """
    if q.ndim != 2 or p.shape != q.shape:
        raise ValueError(f"q and p must both be (B, H) with the same shape, got {tuple(q.shape)} and {tuple(p.shape)}")
    if q.shape[0] == 0:
        raise ValueError("empty batch: need at least one pair")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if negatives is not None and (negatives.ndim != 2 or negatives.shape[1] != q.shape[1]):
        raise ValueError(f"negatives must be (N, {q.shape[1]}), got {tuple(negatives.shape)}")
    candidates = p if negatives is None else torch.cat([p, negatives], dim=0)  # (B + B*k, H)
    scores = q.float() @ candidates.float().T / temperature  # (B, B + B*k)
    target = torch.arange(q.shape[0], device=q.device)
    loss = F.cross_entropy(scores, target)
    if symmetric:
        loss = (loss + F.cross_entropy(scores[:, : q.shape[0]].T, target)) / 2
    accuracy = (scores.argmax(dim=1) == target).float().mean().item()
    return ContrastiveOutput(loss, accuracy)
