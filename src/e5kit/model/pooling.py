"""Pooling and normalization exactly as the model cards: mean over real tokens (E5, multilingual-e5) or the
last real token (e5-mistral, whose inputs end in EOS), then L2."""

from __future__ import annotations

import torch


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `hidden` (B, T, H) over positions where `mask` (B, T) is 1; padding counts for nothing."""
    mask_f = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    summed = (hidden * mask_f).sum(dim=1)  # (B, H)
    counts = mask_f.sum(dim=1).clamp(min=1.0)  # (B, 1)
    return summed / counts


def cls_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """First token's state (B, H), for checkpoints that store CLS pooling (not E5)."""
    del mask
    return hidden[:, 0]


def last_token_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """State (B, H) of each row's last real token, wherever the padding is (left, right or none).

    e5-mistral's card picks column -1 when every row ends in a real token (left padding) and
    position length - 1 otherwise (right padding); the last 1 of the mask is both.
    """
    width = mask.shape[1]
    last = width - 1 - mask.flip(1).to(torch.long).argmax(dim=1)  # (B,) index of the last 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last.to(hidden.device)]


POOLERS = {"mean": mean_pool, "cls": cls_pool, "last": last_token_pool}


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows scaled to unit length, as torch.nn.functional.normalize(p=2, dim=-1)."""
    return torch.nn.functional.normalize(x, p=2.0, dim=-1, eps=eps)
