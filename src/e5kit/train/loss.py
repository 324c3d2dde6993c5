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
             temperature: float = 0.01, symmetric: bool = False, rows: slice | None = None) -> ContrastiveOutput:
    """Loss of query i picking passage i among all passages (and hard negatives) of the batch.

    q, p: (B, H) L2-normalised embeddings; negatives: (B * k, H), the k hard negatives of query i in
    rows i*k .. i*k+k-1 (they are candidates for every query, as further in-batch negatives).
    Score = cos / temperature (E5 uses 0.01). `symmetric` adds the passage -> query term and averages.
    `rows` scores only those queries (and, in the symmetric term, those passages) against every
    candidate: the loss and accuracy are then means over those rows. Under DDP each rank takes its own
    rows, so a rank holds a (B / world, B) score matrix instead of (B, B), and the ranks' losses sum,
    through the gather's backward, to the same gradients as the full loss (train/distributed.py).
    """
    if q.ndim != 2 or p.shape != q.shape:
        raise ValueError(f"q and p must both be (B, H) with the same shape, got {tuple(q.shape)} and {tuple(p.shape)}")
    if q.shape[0] == 0:
        raise ValueError("empty batch: need at least one pair")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if negatives is not None and (negatives.ndim != 2 or negatives.shape[1] != q.shape[1]):
        raise ValueError(f"negatives must be (N, {q.shape[1]}), got {tuple(negatives.shape)}")
    n = q.shape[0]
    rows = slice(0, n) if rows is None else rows
    if not (isinstance(rows, slice) and rows.step in (None, 1) and 0 <= (rows.start or 0) < (rows.stop or 0) <= n):
        raise ValueError(f"rows must be a non-empty slice of range({n}) with step 1, got {rows!r}")
    rows = slice(rows.start or 0, rows.stop)
    candidates = p if negatives is None else torch.cat([p, negatives], dim=0)  # (B + B*k, H)
    scores = q[rows].float() @ candidates.float().T / temperature  # (R, B + B*k)
    target = torch.arange(rows.start, rows.stop, device=q.device)  # query i's passage is row i of p
    loss = F.cross_entropy(scores, target)
    if symmetric:  # passage i picking query i among all queries
        back = p[rows].float() @ q.float().T / temperature  # (R, B)
        loss = (loss + F.cross_entropy(back, target)) / 2
    accuracy = (scores.argmax(dim=1) == target).float().mean().item()
    return ContrastiveOutput(loss, accuracy)
