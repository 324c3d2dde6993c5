"""Precision modes: which numbers the encoder computes in, checked against the device.

- ``fp32``: exact, the reference (max |diff| to the model card's code <= 1e-5). The default.
- ``bf16``: weights and activations in bfloat16; pooling and normalization stay fp32. On CPUs
  with bf16 matrix instructions (AVX512-BF16, AMX) and on GPUs.
- ``fp16``: half precision, GPUs only (CPUs have no fast fp16 matmul).
- ``int8``: CPU, Linear layers dynamically quantized to int8 (per-channel weights). Fast, but
  measured outside the quality budget (min cosine to fp32 ~0.97 on all-MiniLM-L6-v2), so ``auto``
  never picks it; use it only where ranking quality matters less than speed.
- ``ov-fp32``, ``ov-bf16``, ``ov-int8``: CPU, the encoder compiled by OpenVINO (encode/openvino.py):
  f32 kernels (exact to ~2e-7), its bf16 inference hint, NNCF static int8 calibrated on
  non-evaluation text (outside the budget), or ``ov-int8w``: NNCF weight-only int8 (activations f32;
  embeddings and FFN output projections stay float), inside the budget with int8 weights.
  Needs the ``openvino`` and ``nncf`` packages (extra ``e5kit[openvino]``).
- ``auto``: the fastest mode measured inside the quality budget (docs/precision.md) on the
  hardware found: fp16 on CUDA, bf16 on CPUs with bf16 matrix units, else fp32 (ov-bf16 is faster
  on short full-length batches but slower on long mixed-length ones, so it is not auto's pick).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

log = logging.getLogger("e5kit")

OV_MODES = ("ov-fp32", "ov-bf16", "ov-int8", "ov-int8w")
PRECISIONS = ("fp32", "bf16", "fp16", "int8", *OV_MODES, "auto")
# Modes that need bf16 instructions on a CPU: elsewhere torch emulates bf16 matmuls and OpenVINO ignores its hint.
BF16_MODES = ("bf16", "ov-bf16")
# The dtype the torch model is loaded in (OpenVINO modes convert from fp32 weights).
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32,
          **dict.fromkeys(OV_MODES, torch.float32)}
DEFAULT_PRECISION = "fp32"
# The quality budget a fast mode must stay inside, against fp32: SciFact nDCG@10 and STSB Spearman within
# 0.003, every embedding's cosine to fp32 >= 0.999 (measured by `e5kit bench --quality`, e5kit/bench/quality.py).
QUALITY_BUDGET = {"d_ndcg10": 0.003, "d_spearman": 0.003, "min_cosine_to_fp32": 0.999}
# Modes measured inside that budget (docs/precision.md; ov-int8 and int8 are outside it). ov-int8w: SciFact
# nDCG@10 +0.0016, STSB -0.0003, min cosine 0.99958 (all-MiniLM-L6-v2, docs/bench-encode.md, session 23).
WITHIN_BUDGET = ("fp32", "bf16", "fp16", "ov-fp32", "ov-bf16", "ov-int8w")


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


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN reports bf16 matrix instructions (AVX512-BF16 or AMX) on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def auto_precision(device: torch.device) -> str:
    """The fastest mode inside the quality budget on `device` (see module docstring)."""
    # ov-bf16 was 1.6x e5kit bf16 on MiniLM @256 but 0.6x on BERT-base @512 (it runs padded batches),
    # so auto keeps the torch modes; docs/bench-encode.md, "OpenVINO modes".
    if device.type == "cuda":
        return "fp16"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """The concrete mode in force: validated, with None -> fp32 and 'auto' -> the hardware's best."""
    name = DEFAULT_PRECISION if precision is None else precision
    if not isinstance(name, str) or name not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if name == "auto":
        return auto_precision(device)
    if name == "fp16" and device.type == "cpu":
        raise ValueError("precision 'fp16' is for GPUs; on CPU use 'bf16', 'int8' or 'fp32'")
    if name == "int8" and device.type != "cpu":
        raise ValueError(f"precision 'int8' runs on CPU only (dynamic quantization); on {device.type} use 'fp16' "
                         "or 'bf16'")
    if name in BF16_MODES and device.type == "cpu" and not cpu_has_fast_bf16():
        log.warning("precision %r on a CPU without bf16 instructions (AVX512-BF16 or AMX): %s", name,
                    "torch emulates bf16 matmuls here, far slower than fp32" if name == "bf16"
                    else "OpenVINO runs it in f32 here; 'auto' picks fp32 on this CPU")
    if name in OV_MODES:
        from e5kit.encode.openvino import openvino_missing

        if device.type != "cpu":
            raise ValueError(f"precision {name!r} runs on CPU only (OpenVINO); on {device.type} use 'fp16' or 'bf16'")
        missing = openvino_missing()
        if missing:
            raise ValueError(f"precision {name!r}: {missing}")
    return name


def make_encoder(hf_model: torch.nn.Module, tokenizer: Any, pooling: str, device: torch.device,
                 precision: str) -> Any:
    """The encoder that runs `precision` (a resolved mode): torch's TransformerEncoder or OpenVINO's."""
    from e5kit.model.encoder import TransformerEncoder

    if precision in OV_MODES:
        from e5kit.encode.openvino import OpenVinoEncoder, calibration_texts
        from e5kit.encode.threads import configure_threads

        kind = precision.removeprefix("ov-")
        calibration = tokenizer(list(calibration_texts())).ids if kind == "int8" else None
        return OpenVinoEncoder(hf_model, tokenizer.pad_id, pooling, device, precision=kind,
                               calibration=calibration, threads=configure_threads())
    return TransformerEncoder(hf_model, tokenizer.pad_id, pooling, device, DTYPES[precision],
                              int8=precision == "int8")
