"""OpenVINO as an e5kit CPU backend: the encoder graph compiled by OpenVINO, optionally int8.

Modes (see encode/precision.py): ``ov-fp32`` (OpenVINO's f32 kernels), ``ov-bf16`` (its bf16
inference hint, for CPUs with AVX512-BF16 or AMX) and ``ov-int8`` (post-training static int8 by
NNCF: activations and weights int8, calibrated on texts that are NOT evaluation data: paragraphs of
Python's own standard-library docstrings, see `calibration_texts`) and ``ov-int8w`` (weight-only int8:
matrices stored in int8, activations in f32, no calibration; inside the quality budget where static
int8 is not; the quantized matrices take a quarter of their f32 memory). The graph takes right-padded
(B, T) ids and mask, and pools inside the graph; the L2 norm runs in fp32 outside it.
Why a second backend: OpenVINO's int8 GEMMs use the CPU's VNNI / AMX-int8 units, which torch's eager
dynamic quantization does not reach with the same accuracy (docs/precision.md has the measurements).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

import numpy as np
import torch

from e5kit.model.pooling import POOLERS, l2_normalize

log = logging.getLogger("e5kit")

OV_PRECISIONS = ("fp32", "bf16", "int8", "int8w")
# Left in float by the weight-only mode: the embedding tables and the FFN output projections, whose int8
# rounding cost most (min cosine to fp32 on held-out non-evaluation texts, all-MiniLM-L6-v2: all weights
# 0.99906, without embeddings 0.99928, without both 0.99961; docs/precision.md).
WEIGHT_ONLY_FLOAT = (r".*embeddings.*", r".*layer\.\d+\.output\.dense.*")
CALIBRATION_TEXTS = 300  # as many as sentence-transformers' static-quantization default (num_samples=300)
CALIBRATION_MODULES = ("argparse", "collections", "json", "pathlib", "subprocess", "threading", "logging",
                       "datetime", "decimal", "fractions", "statistics", "random", "string", "textwrap",
                       "unittest", "email", "http.client", "urllib.request", "sqlite3", "zipfile",
                       "tarfile", "csv", "configparser", "shutil", "tempfile", "socket", "ssl", "asyncio",
                       "concurrent.futures", "multiprocessing", "functools", "itertools", "inspect", "typing",
                       "dataclasses", "enum", "heapq", "bisect", "calendar", "codecs", "difflib", "gzip",
                       "hashlib", "hmac", "locale", "mailbox", "pickle", "pprint", "re", "sched", "selectors",
                       "signal", "smtplib", "struct", "timeit", "traceback", "weakref", "xml.dom.minidom")


def openvino_missing() -> str | None:
    """Why the OpenVINO backend cannot run here (None when it can)."""
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError as exc:
        return f"OpenVINO backend needs openvino and nncf (pip install 'e5kit[openvino]'): {exc}"
    return None


@functools.cache
def calibration_texts(n: int = CALIBRATION_TEXTS, min_chars: int = 80) -> tuple[str, ...]:
    """`n` English paragraphs from Python standard-library docstrings: real prose, never evaluation data.

    Deterministic for a Python version (module list fixed, members in sorted order); the long
    paragraphs come first so calibration sees full-length inputs as well as short ones.
    """
    import importlib
    import inspect
    import warnings

    paragraphs: dict[str, None] = {}
    for name in CALIBRATION_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        docs = [inspect.getdoc(module) or ""]
        with warnings.catch_warnings():  # some attributes are deprecated aliases that warn when touched
            warnings.simplefilter("ignore")
            docs += [inspect.getdoc(getattr(module, attr, None)) or "" for attr in sorted(dir(module))
                     if not attr.startswith("_")]
        for doc in docs:
            for para in doc.split("\n\n"):
                text = " ".join(para.split())
                if len(text) >= min_chars and not text.startswith((">>>", "...")):
                    paragraphs[text] = None
    texts = list(paragraphs)
    if not texts:
        raise RuntimeError("no calibration text found in the standard library's docstrings")
    rng = np.random.default_rng(0)
    picked = [texts[i] for i in rng.permutation(len(texts))[:n]]
    # Join neighbours into longer passages too: calibration must see the ranges of long inputs.
    longer = [" ".join(picked[i:i + 6]) for i in range(0, len(picked), 6)]
    return tuple(sorted(picked + longer, key=len, reverse=True)[:n])


class _Pooled(torch.nn.Module):
    """HF model + pooling: (ids, mask) -> (B, H) float32, the graph OpenVINO converts."""

    def __init__(self, model: torch.nn.Module, pooling: str) -> None:
        super().__init__()
        self.model = model
        self.pool = POOLERS[pooling]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.pool(hidden.float(), attention_mask)


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, T) int64 ids and mask, right-padded to the longest sequence."""
    if not ids:
        raise ValueError("pad_batch needs at least one sequence")
    width = max(len(x) for x in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return input_ids, mask


def export_openvino(model: torch.nn.Module, pooling: str, pad_id: int):
    """The model with pooling as an OpenVINO model with dynamic batch and length."""
    import warnings

    import openvino as ov

    ids, mask = pad_batch([[pad_id + 1] * 8, [pad_id + 1] * 5], pad_id)
    example = (torch.from_numpy(ids), torch.from_numpy(mask))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about data-dependent branches in transformers
        ov_model = ov.convert_model(_Pooled(model.float().eval(), pooling), example_input=example,
                                    input=[("input_ids", [-1, -1], ov.Type.i64),
                                           ("attention_mask", [-1, -1], ov.Type.i64)])
    return ov_model


def quantize_int8(ov_model, calibration: Sequence[tuple[np.ndarray, np.ndarray]]):
    """Post-training static int8 (NNCF, transformer preset: softmax/LayerNorm stay in float)."""
    import nncf

    if not calibration:
        raise ValueError("int8 calibration needs at least one batch")
    import contextlib
    import io

    logging.getLogger("nncf").setLevel(logging.ERROR)
    items = [{"input_ids": i, "attention_mask": m} for i, m in calibration]
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF draws progress bars on stdout
        return nncf.quantize(ov_model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER,
                             subset_size=len(items))


def compress_int8_weights(ov_model):
    """Weight-only int8 (NNCF, per-channel asymmetric): matmul weights stored as int8 and expanded in the
    kernels; activations stay float, so no calibration is needed (WEIGHT_ONLY_FLOAT stays float)."""
    import contextlib
    import io

    import nncf

    logging.getLogger("nncf").setLevel(logging.ERROR)
    keep = nncf.IgnoredScope(patterns=list(WEIGHT_ONLY_FLOAT), validate=False)
    with contextlib.redirect_stdout(io.StringIO()):
        return nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM, ignored_scope=keep)


class OpenVinoEncoder:
    """Runs batches of token ids through an OpenVINO-compiled encoder (CPU); same `embed` as TransformerEncoder.

    `calibration` (int8 only): token-id lists of non-evaluation texts; each becomes a batch of one.
    `extra_config`: more OpenVINO compile properties (e.g. {"PERF_COUNT": True} for a profile).
    """

    def __init__(self, model: torch.nn.Module, pad_id: int, pooling: str, device: torch.device, *,
                 precision: str = "fp32", calibration: Sequence[Sequence[int]] | None = None,
                 threads: int | None = None, extra_config: dict[str, object] | None = None) -> None:
        import openvino as ov

        missing = openvino_missing()
        if missing:
            raise ValueError(missing)
        if device.type != "cpu":
            raise ValueError(f"the OpenVINO backend runs on CPU only, not on {device}")
        if precision not in OV_PRECISIONS:
            raise ValueError(f"OpenVINO precision {precision!r} is not one of {', '.join(OV_PRECISIONS)}")
        self.device, self.pad_id, self.precision = device, pad_id, precision
        self.dtype = torch.float32
        self.backend = "openvino"
        self.model = None  # the HF module is not kept: E5.save re-reads fp32 weights for non-fp32 modes
        self.config = model.config  # for E5.info's memory estimate
        self.parameter_count = sum(p.numel() for p in model.parameters())
        # as OpenVINO holds the big matrices (int8w: 2/3 of each layer's weights in int8, the rest in f32)
        self.weight_bytes = {"int8": 1, "int8w": 2, "bf16": 2}.get(precision, 4)
        ov_model = export_openvino(model, pooling, pad_id)
        if precision == "int8":
            if not calibration:
                raise ValueError("ov-int8 needs calibration token ids (E5 passes calibration_texts())")
            ov_model = quantize_int8(ov_model, [pad_batch([seq], pad_id) for seq in calibration])
        elif precision == "int8w":
            ov_model = compress_int8_weights(ov_model)
        # int8 quantize points (static int8) or int8 weight constants (weight-only): a check that int8 really runs
        self.quantized_ops = sum(op.get_type_name() == "FakeQuantize" or (op.get_type_name() == "Constant" and
                                 op.get_output_element_type(0).get_type_name() in ("i8", "u8"))
                                 for op in ov_model.get_ops())
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        config.update(extra_config or {})
        self.compiled = ov.Core().compile_model(ov_model, "CPU", config)
        self.request = self.compiled.create_infer_request()

    def embed(self, ids: Sequence[Sequence[int]], normalize: bool = True, *, to_cpu: bool = True) -> torch.Tensor:
        """Embeddings (B, H) float32 on the CPU; `to_cpu` is accepted for the engine's sake."""
        del to_cpu
        input_ids, mask = pad_batch(ids, self.pad_id)
        out = self.request.infer({"input_ids": input_ids, "attention_mask": mask}, share_inputs=True)
        pooled = torch.from_numpy(np.array(out[self.compiled.output(0)], dtype=np.float32, copy=True))
        return l2_normalize(pooled) if normalize else pooled
