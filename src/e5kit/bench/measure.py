"""What a benchmark measures besides wall time: resident memory, the dense-matmul peak, model FLOPs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


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


CPU_FLAGS = ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni")


def cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """CPU model name and the matrix-unit flags that decide which modes are fast (Linux /proc/cpuinfo)."""
    from e5kit.hardware import cpu, parse_cpuinfo

    if cpuinfo is None:
        model, flags = cpu()
    else:
        model, flags = parse_cpuinfo(cpuinfo)
        model = model or "unknown"
    return {"model": model, "flags": {f: f in flags for f in CPU_FLAGS}}


def cpu_line(info: dict[str, Any]) -> str:
    """'AMD EPYC; amx_bf16 no, amx_int8 no, avx512_bf16 yes, avx512_vnni yes'."""
    return f"{info['model']}; " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in info["flags"].items())
