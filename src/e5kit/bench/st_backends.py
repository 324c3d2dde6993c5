"""What a user would pick instead of e5kit: sentence-transformers with its torch, ONNX or OpenVINO backend.

`st_model` loads one the way sentence-transformers documents it (`backend="onnx"` / `"openvino"`);
``openvino-int8`` is its post-training static int8 (what `export_static_quantized_openvino_model`
does: optimum-intel's OVQuantizer, default OVQuantizationConfig, inputs padded to 384 tokens, 300
samples), calibrated here on e5kit's non-evaluation calibration texts, because that function's
default calibration set (GLUE SST-2) would have to come from the hub. A backend whose packages do
not import is reported with the reason instead of a row (`StBackendMissing`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ST_BACKENDS = ("torch", "onnx", "openvino", "openvino-int8")
ST_CALIBRATION_LENGTH = 384  # export_static_quantized_openvino_model pads calibration inputs to this


class StBackendMissing(RuntimeError):
    """A sentence-transformers backend that cannot run here; the message says why."""


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1][:200] if text else ''}"


def st_model(path: str | Path, backend: str, device: str, max_len: int, work_dir: Path | None = None) -> Any:
    """A SentenceTransformer on `backend` (one of ST_BACKENDS); StBackendMissing when it cannot load here."""
    from sentence_transformers import SentenceTransformer

    if backend not in ST_BACKENDS:
        raise ValueError(f"sentence-transformers backend {backend!r} is not one of {', '.join(ST_BACKENDS)}")
    if backend == "torch":
        st = SentenceTransformer(str(path), device=device)
    else:
        if device != "cpu":
            raise StBackendMissing(f"{backend} rows are measured on CPU only")
        try:
            st = SentenceTransformer(str(path), device="cpu", backend=backend.removesuffix("-int8"))
            if backend == "openvino-int8":
                st = _static_int8(st, path, Path(work_dir or path) / "st-openvino-int8")
        except StBackendMissing:
            raise
        except Exception as exc:  # ImportError inside optimum, or its own "please install" Exception
            raise StBackendMissing(f"sentence-transformers backend {backend!r} does not load here: "
                                   f"{_short(exc)}") from exc
    st.max_seq_length = max_len
    return st


def _static_int8(st: Any, path: str | Path, out: Path) -> Any:
    """sentence-transformers' OpenVINO static int8, calibrated on e5kit's calibration texts."""
    from datasets import Dataset
    from optimum.intel.openvino import OVConfig, OVQuantizationConfig, OVQuantizer
    from sentence_transformers import SentenceTransformer

    from e5kit.encode.openvino import calibration_texts

    config = OVQuantizationConfig()
    texts = list(calibration_texts(config.num_samples or 300))
    enc = st.tokenizer(texts, padding="max_length", max_length=ST_CALIBRATION_LENGTH, truncation=True)
    quantizer = OVQuantizer.from_pretrained(st.transformers_model)
    quantizer.quantize(Dataset.from_dict(dict(enc)), save_directory=str(out),
                       ov_config=OVConfig(quantization_config=config))
    st.save(str(out / "model"))  # the ST layout (tokenizer, pooling) beside the quantized graph
    xml = next(x for x in out.rglob("*.xml") if (out / "model") not in x.parents)
    target = out / "model" / "openvino" / xml.name
    target.parent.mkdir(parents=True, exist_ok=True)
    for f in xml.parent.glob(xml.stem + ".*"):
        (target.parent / f.name).write_bytes(f.read_bytes())
    return SentenceTransformer(str(out / "model"), device="cpu", backend="openvino",
                               model_kwargs={"file_name": f"openvino/{target.name}"})


class StAsE5:
    """A SentenceTransformer seen through the few E5 methods eval's DenseModel uses (for --quality rows).

    Prefixes come from e5kit's prompt policy for the same checkpoint, so both sides encode the same text.
    """

    def __init__(self, st: Any, policy: Any, name: str) -> None:
        from e5kit.encode.engine import EncodeStats

        self.st, self.policy, self.name = st, policy, name
        self.last_stats = EncodeStats()
        self.fingerprint = name

    def encode(self, texts: Sequence[str], *, prefix: str = "", show_progress: bool | None = None) -> np.ndarray:
        del show_progress
        if not texts:
            return np.zeros((0, self.st.get_sentence_embedding_dimension()), dtype=np.float32)
        return self.st.encode([self.policy.add(t, prefix) for t in texts], normalize_embeddings=True,
                              convert_to_numpy=True, show_progress_bar=False).astype(np.float32)

    def iter_encode(self, texts: Any, *, prefix: str = "", show_progress: bool | None = None,
                    total: int | None = None, chunk: int = 4096) -> Iterator[np.ndarray]:
        del total
        block: list[str] = []
        for text in texts:
            block.append(text)
            if len(block) == chunk:
                yield self.encode(block, prefix=prefix, show_progress=show_progress)
                block = []
        if block:
            yield self.encode(block, prefix=prefix, show_progress=show_progress)

    def info(self) -> dict[str, Any]:
        return {"model": self.name, "runner": "sentence-transformers"}
