"""sentence-transformers as a user would install it, loaded and timed for `e5kit bench`.

This module imports nothing from e5kit, so that it also runs as a script under another Python
environment: sentence-transformers' ONNX and OpenVINO backends need optimum / optimum-intel, which
pin a transformers version e5kit's own environment does not have (`make st-env` builds that
environment; docs/benchmarks.md). In-process, `e5kit.bench.st_backends` calls `load_st` directly.

As a script it answers one JSON request per stdin line with one JSON line on its own stdout
(library prints go to stderr): `hello` (package versions), `load` (one model per worker),
`encode` (texts in, vectors saved as .npy, with the wall and CPU seconds and the peak RSS of this
process measured around sentence-transformers' `encode` alone), `quit`.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

try:
    from e5kit.bench.rss import PeakRss
except ImportError:  # run as a script by a Python without e5kit: the sibling file
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from rss import PeakRss  # type: ignore[no-redef]

ST_BACKENDS = ("torch", "onnx", "openvino", "openvino-int8")
ST_CALIBRATION_LENGTH = 384  # export_static_quantized_openvino_model pads calibration inputs to this
PACKAGES = ("sentence-transformers", "transformers", "torch", "optimum", "optimum-intel", "optimum-onnx",
            "onnxruntime", "openvino", "nncf")


class BackendMissing(RuntimeError):
    """A sentence-transformers backend that cannot run here; the message says why."""


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1][:200] if text else ''}"


def check_backend(backend: str) -> None:
    """ValueError unless `backend` is one of ST_BACKENDS."""
    if backend not in ST_BACKENDS:
        raise ValueError(f"sentence-transformers backend {backend!r} is not one of {', '.join(ST_BACKENDS)}")


def versions() -> dict[str, str]:
    """Installed versions of the packages that decide what sentence-transformers runs (absent: missing)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def load_st(path: str | Path, backend: str, device: str, max_len: int, work_dir: str | Path | None = None,
            calibration: Sequence[str] = ()) -> Any:
    """A SentenceTransformer on `backend` (one of ST_BACKENDS), loaded the way its docs show.

    ``openvino-int8`` is its post-training static int8 (what `export_static_quantized_openvino_model`
    does: optimum-intel's OVQuantizer, default OVQuantizationConfig, inputs padded to 384 tokens),
    calibrated on `calibration` instead of that function's default GLUE SST-2 set, which would come
    from the hub. BackendMissing (with the reason) when the backend's packages do not load.
    """
    check_backend(backend)
    if backend == "openvino-int8" and not calibration:
        raise ValueError("openvino-int8 needs calibration texts")
    try:
        from sentence_transformers import SentenceTransformer
    except Exception as exc:
        raise BackendMissing(f"sentence-transformers does not import in {sys.executable}: {_short(exc)}") from exc
    if backend == "torch":
        st = SentenceTransformer(str(path), device=device)
    else:
        if device != "cpu":
            raise BackendMissing(f"{backend} rows are measured on CPU only")
        try:
            st = SentenceTransformer(str(path), device="cpu", backend=backend.removesuffix("-int8"))
            if backend == "openvino-int8":
                st = _static_int8(st, Path(work_dir or path) / "st-openvino-int8", calibration)
        except Exception as exc:  # ImportError inside optimum, or its own "please install" Exception
            raise BackendMissing(f"sentence-transformers backend {backend!r} does not load in "
                                 f"{sys.executable}: {_short(exc)}") from exc
    st.max_seq_length = max_len
    return st


def _static_int8(st: Any, out: Path, calibration: Sequence[str]) -> Any:
    from datasets import Dataset
    from optimum.intel.openvino import OVConfig, OVQuantizationConfig, OVQuantizer
    from sentence_transformers import SentenceTransformer

    config = OVQuantizationConfig()
    texts = list(calibration)[: config.num_samples or 300]
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


def embedding_dim(st: Any) -> int:
    """The model's vector size, under the method name of the installed sentence-transformers (renamed in 5.x)."""
    method = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
    return int(method())


def timed_encode(st: Any, texts: Sequence[str], batch_size: int, normalize: bool = True) -> tuple[Any, dict]:
    """Vectors (float32) and {wall, cpu, peak_rss, start_rss} of this process around `st.encode` alone."""
    with PeakRss() as mem:
        start, cpu = time.perf_counter(), time.process_time()
        vectors = st.encode(list(texts), batch_size=batch_size, normalize_embeddings=normalize,
                            convert_to_numpy=True, show_progress_bar=False)
        took = {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu}
    return vectors.astype("float32"), {**took, "peak_rss": mem.peak, "start_rss": mem.start}


def _answer(req: dict, state: dict) -> dict:
    op = req.get("op")
    if op == "hello":
        return {"versions": versions(), "python": sys.executable}
    if op == "load":
        if req.get("threads"):
            import torch

            torch.set_num_threads(int(req["threads"]))
        st = load_st(req["path"], req["backend"], req.get("device", "cpu"), int(req["max_len"]),
                     req.get("work_dir"), req.get("calibration") or ())
        state["st"] = st
        return {"dim": embedding_dim(st)}
    if op == "encode":
        import numpy as np

        if "st" not in state:
            raise RuntimeError("encode before load")
        vectors, took = timed_encode(state["st"], req["texts"], int(req.get("batch_size", 32)),
                                     bool(req.get("normalize", True)))
        np.save(req["out"], vectors)
        return took
    raise ValueError(f"unknown op {op!r}")


def serve(requests: TextIO, answers: TextIO) -> None:
    """Answer requests line by line until `quit` or end of input; errors are answers, not exits."""
    state: dict[str, Any] = {}
    for line in requests:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            if req.get("op") == "quit":
                break
            answer = _answer(req, state)
        except BackendMissing as exc:
            answer = {"error": str(exc), "missing": True}
        except Exception as exc:
            answer = {"error": _short(exc), "traceback": traceback.format_exc()[-4000:]}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def main() -> None:
    answers = os.fdopen(os.dup(1), "w")  # the protocol keeps the real stdout ...
    os.dup2(2, 1)  # ... and anything the libraries print goes to stderr
    sys.stdout = sys.stderr
    serve(sys.stdin, answers)


if __name__ == "__main__":
    main()
