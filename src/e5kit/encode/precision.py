"""Precision modes: which dtype the encoder runs in, checked against the device."""

from __future__ import annotations

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEFAULT_PRECISION = "fp32"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device to run on: the one asked for, else CUDA when present, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a torch device (e.g. 'cpu', 'cuda', 'cuda:1')") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU here; use device='cpu'")
    return dev


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """Validated precision name; None means the default (fp32, exact)."""
    name = DEFAULT_PRECISION if precision is None else precision
    if name not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if name == "fp16" and device.type == "cpu":
        raise ValueError("precision 'fp16' is for GPUs; on CPU use 'bf16' (or 'fp32')")
    return name
