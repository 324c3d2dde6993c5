"""Distillation from a cross-encoder (E5's fine-tuning stage): KL(teacher || student) over each query's
[positive + its k hard negatives], plus alpha x InfoNCE over the whole batch, as in the E5 paper and the
authors' SimLM scripts (alpha 0.2, student temperature 0.02).

The teacher's distribution is softmax(teacher_scores / teacher_temperature), the student's softmax of
cos(q, candidate) / temperature over the same 1 + k candidates. Rows without teacher scores add no KL term
(they still count in the mean, so the loss of a batch split over ranks sums exactly as the InfoNCE part does:
each rank's loss is a mean over its own rows, see train/distributed.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from e5kit.data.pairs import Pair
from e5kit.train.loss import ContrastiveOutput, info_nce


def teacher_matrix(pairs: Sequence[Pair], k: int) -> torch.Tensor:
    """(B, 1 + k) teacher scores aligned with the trainer's texts: [positive, negative 0..k-1], where a pair with
    fewer than k negatives repeats its own (negative j is negatives[j % n], as `pair_texts` takes them). A pair
    without teacher scores or without negatives gets a row of NaN (no KL term)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rows = []
    for p in pairs:
        if p.teacher_scores is None or not p.negatives:
            rows.append([math.nan] * (1 + k))
            continue
        negs = p.teacher_scores[1:]
        rows.append([p.teacher_scores[0], *(negs[j % len(negs)] for j in range(k))])
    return torch.tensor(rows, dtype=torch.float32).reshape(len(pairs), 1 + k)


def distill_loss(q: torch.Tensor, p: torch.Tensor, negatives: torch.Tensor, teacher: torch.Tensor, *,
                 temperature: float, teacher_temperature: float = 1.0, alpha: float = 0.2,
                 rows: slice | None = None) -> ContrastiveOutput:
    """KL(teacher || student) over [p_i, negatives of i] for the rows' queries + alpha x info_nce.

    q, p: (B, H); negatives: (B * k, H), query i's in rows i*k .. i*k+k-1; teacher: (R, 1 + k) for the
    rows scored (all B when `rows` is None), NaN rows meaning "no teacher scores".
    """
    n, dim = q.shape
    if negatives.ndim != 2 or negatives.shape[1] != dim or negatives.shape[0] % max(n, 1):
        raise ValueError(f"negatives must be (B * k, {dim}) for B = {n}, got {tuple(negatives.shape)}")
    k = negatives.shape[0] // n
    if not teacher_temperature > 0:
        raise ValueError(f"teacher_temperature must be > 0, got {teacher_temperature}")
    nce = info_nce(q, p, negatives=negatives, temperature=temperature, rows=rows)  # validates q, p, rows
    rows = slice(0, n) if rows is None else slice(rows.start or 0, rows.stop)
    if teacher.shape != (rows.stop - rows.start, 1 + k):
        raise ValueError(f"teacher scores must be ({rows.stop - rows.start}, {1 + k}), got {tuple(teacher.shape)}")
    cands = torch.cat([p[rows].unsqueeze(1), negatives.view(n, k, dim)[rows]], dim=1).float()  # (R, 1+k, H)
    student = torch.einsum("rh,rch->rc", q[rows].float(), cands) / temperature  # (R, 1+k)
    has = torch.isfinite(teacher).all(dim=1)
    target = F.log_softmax(torch.where(has[:, None], teacher, 0.0).to(student) / teacher_temperature, dim=1)
    per_row = F.kl_div(F.log_softmax(student, dim=1), target, log_target=True, reduction="none").sum(dim=1)
    kl = torch.where(has, per_row, 0.0).sum() / per_row.shape[0]
    return ContrastiveOutput(kl + alpha * nce.loss, nce.accuracy)
