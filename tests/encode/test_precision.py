"""Precision modes: names, device checks, auto, and each mode's embeddings against fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from e5kit import E5
from e5kit.encode import precision as P
from tests.texts import mixed_texts

CPU = torch.device("cpu")


@pytest.mark.parametrize("name", ["fp32", "bf16", "int8"])
def test_cpu_modes_resolve_to_themselves(name):
    assert P.resolve_precision(name, CPU) == name


def test_none_is_exact_fp32():
    assert P.resolve_precision(None, CPU) == "fp32"


@pytest.mark.parametrize("bad", ["FP32", "float16", "", "int4", 16, None.__class__])
def test_unknown_precision_names_the_allowed_set(bad):
    with pytest.raises(ValueError, match="fp32, bf16, fp16, int8, auto"):
        P.resolve_precision(bad, CPU)


def test_fp16_refused_on_cpu_and_int8_on_gpu():
    with pytest.raises(ValueError, match="GPUs"):
        P.resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match="CPU only"):
        P.resolve_precision("int8", torch.device("cuda"))


@pytest.mark.parametrize(("fast_bf16", "want"), [(True, "bf16"), (False, "fp32")])
def test_auto_on_cpu_follows_bf16_hardware(monkeypatch, fast_bf16, want):
    monkeypatch.setattr(P, "cpu_has_fast_bf16", lambda: fast_bf16)
    assert P.resolve_precision("auto", CPU) == want


def test_auto_on_cuda_is_fp16_and_inside_budget():
    assert P.auto_precision(torch.device("cuda")) == "fp16"
    for dev in ("cpu", "cuda"):
        assert P.auto_precision(torch.device(dev)) in P.WITHIN_BUDGET
    assert "int8" not in P.WITHIN_BUDGET


@pytest.fixture(scope="module")
def fp32_vectors(tiny_e5):
    texts = mixed_texts(120, seed=3)
    return texts, E5(tiny_e5, device="cpu").encode_passages(texts)


@pytest.mark.parametrize(("mode", "min_cos"), [("bf16", 0.995), ("int8", 0.95), ("auto", 0.995)])
def test_mode_embeddings_stay_close_to_fp32(tiny_e5, fp32_vectors, mode, min_cos):
    texts, ref = fp32_vectors
    m = E5(tiny_e5, device="cpu", precision=mode)
    assert m.precision in P.PRECISIONS and m.precision != "auto"  # the mode in force, never "auto"
    assert m.info()["precision"] == m.precision
    got = m.encode_passages(texts)
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = (got * ref).sum(axis=1)
    assert cos.min() >= min_cos
    if m.precision != "fp32":
        assert np.abs(got - ref).max() > 1e-6  # really a different computation, not fp32 again


def test_int8_really_quantizes_and_saves_fp32(tiny_e5, tmp_path):
    m = E5(tiny_e5, device="cpu", precision="int8")
    linears = [type(mod) for mod in m.engine.encoder.runner.modules() if type(mod).__name__ == "Linear"]
    assert linears and all(".quantized.dynamic" in t.__module__ for t in linears)
    saved = E5(m.save(tmp_path / "out"), device="cpu")
    assert saved.precision == "fp32"
    text = ["passage: water is wet"]
    np.testing.assert_allclose(saved.encode(text), E5(tiny_e5, device="cpu").encode(text), atol=1e-6)
