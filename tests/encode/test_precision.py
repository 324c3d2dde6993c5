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
    with pytest.raises(ValueError, match="fp32, bf16, fp16, int8, ov-fp32, ov-bf16, ov-int8, ov-int8w, auto"):
        P.resolve_precision(bad, CPU)


def test_fp16_refused_on_cpu_and_int8_on_gpu():
    with pytest.raises(ValueError, match="GPUs"):
        P.resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match="CPU only"):
        P.resolve_precision("int8", torch.device("cuda"))


@pytest.mark.parametrize(("fast_bf16", "ov", "want"), [(True, False, "bf16"), (False, False, "fp32"),
                                                      (True, True, "bf16"), (False, True, "fp32")])
def test_auto_on_cpu_follows_bf16_hardware_and_openvino(monkeypatch, fast_bf16, ov, want):
    from e5kit.encode import openvino as O

    monkeypatch.setattr(P, "cpu_has_fast_bf16", lambda: fast_bf16)
    monkeypatch.setattr(O, "openvino_missing", lambda: None if ov else "no openvino here")
    assert P.resolve_precision("auto", CPU) == want
    assert want in P.WITHIN_BUDGET


def test_auto_on_cuda_is_fp16_and_inside_budget():
    assert P.auto_precision(torch.device("cuda")) == "fp16"
    for dev in ("cpu", "cuda"):
        assert P.auto_precision(torch.device(dev)) in P.WITHIN_BUDGET
    assert "int8" not in P.WITHIN_BUDGET and "ov-int8" not in P.WITHIN_BUDGET


def test_openvino_modes_refused_on_gpu_or_without_the_package(monkeypatch):
    from e5kit.encode import openvino as O

    with pytest.raises(ValueError, match="CPU only"):
        P.resolve_precision("ov-bf16", torch.device("cuda"))
    monkeypatch.setattr(O, "openvino_missing", lambda: "OpenVINO backend needs openvino and nncf")
    with pytest.raises(ValueError, match="ov-fp32.*needs openvino"):
        P.resolve_precision("ov-fp32", CPU)


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


def _needs_openvino():
    from e5kit.encode.openvino import openvino_missing

    if openvino_missing():
        pytest.skip(openvino_missing())


@pytest.mark.parametrize(("mode", "max_diff", "min_cos"), [("ov-fp32", 1e-5, 0.99999), ("ov-bf16", None, 0.995),
                                                           ("ov-int8", None, 0.95), ("ov-int8w", None, 0.999)])
def test_openvino_modes_stay_close_to_fp32(tiny_e5, fp32_vectors, mode, max_diff, min_cos):
    _needs_openvino()
    texts, ref = fp32_vectors
    m = E5(tiny_e5, device="cpu", precision=mode)
    assert m.precision == mode and m.engine.encoder.backend == "openvino"
    got = m.encode_passages(texts)
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert (got * ref).sum(axis=1).min() >= min_cos
    if mode == "ov-bf16" and not P.cpu_has_fast_bf16():
        assert np.abs(got - ref).max() <= 1e-5  # OpenVINO ignores the bf16 hint on a CPU without bf16: f32
    elif max_diff is not None:
        assert np.abs(got - ref).max() <= max_diff  # exact: the same fp32 arithmetic, other kernels
    else:
        assert np.abs(got - ref).max() > 1e-6  # really a lower precision
    assert m.encode([]).shape == (0, ref.shape[1])


def test_openvino_int8_really_quantizes_and_saves_fp32(tiny_e5, tmp_path):
    _needs_openvino()
    m = E5(tiny_e5, device="cpu", precision="ov-int8")
    assert m.engine.encoder.quantized_ops >= 2 * 6  # at least the inputs of the six linears of each layer
    assert E5(tiny_e5, device="cpu", precision="ov-fp32").engine.encoder.quantized_ops == 0
    saved = E5(m.save(tmp_path / "out"), device="cpu")
    assert saved.precision == "fp32"
    text = ["passage: water is wet"]
    np.testing.assert_allclose(saved.encode(text), E5(tiny_e5, device="cpu").encode(text), atol=1e-6)


def test_openvino_weight_only_int8_stores_int8_weights_and_keeps_the_listed_ones_float(tiny_e5):
    """Every layer's attention and FFN-in matrices in int8; embeddings and FFN outputs stay float."""
    import openvino as ov

    _needs_openvino()
    from e5kit.encode.openvino import compress_int8_weights, export_openvino

    m = E5(tiny_e5, device="cpu")
    layers = m.engine.encoder.model.config.num_hidden_layers
    graph = compress_int8_weights(export_openvino(m.engine.encoder.model, "mean", m.engine.tokenizer.pad_id))
    int8 = [op.get_friendly_name() for op in graph.get_ops() if op.get_type_name() == "Constant"
            and op.get_output_element_type(0) in (ov.Type.i8, ov.Type.u8)
            and not op.get_friendly_name().endswith("zero_point")]
    assert len(int8) == 5 * layers and all(name.endswith(".weight") for name in int8)  # q, k, v, attn out, FFN in
    assert not any("embeddings" in name or ".output.dense" in name and "attention" not in name for name in int8)
    ov_m = E5(tiny_e5, device="cpu", precision="ov-int8w")
    assert ov_m.engine.encoder.quantized_ops >= 5 * layers and ov_m.engine.encoder.weight_bytes == 2


def test_calibration_texts_are_not_evaluation_data():
    from e5kit.encode.openvino import CALIBRATION_TEXTS, calibration_texts

    texts = calibration_texts()
    assert len(texts) == CALIBRATION_TEXTS and len(set(texts)) == len(texts)
    assert texts == calibration_texts() and all(len(t) >= 80 for t in texts)
    assert max(len(t.split()) for t in texts) > 200  # long inputs too, for activation ranges at full length
    from tests.conftest import SHARED_DATA

    sts = SHARED_DATA / "sts" / "stsbenchmark.test.jsonl.gz"
    if sts.is_file():
        import gzip
        import json

        with gzip.open(sts, "rt") as fh:
            pairs = {json.loads(line)["sentence1"] for line in fh}
        assert not pairs & set(texts)


def test_openvino_encoder_bad_inputs(tiny_e5):
    _needs_openvino()
    from e5kit.encode.openvino import OpenVinoEncoder, pad_batch
    from e5kit.model.checkpoint import read_checkpoint
    from e5kit.model.encoder import load_hf_model

    model = load_hf_model(read_checkpoint(tiny_e5))
    with pytest.raises(ValueError, match="not one of"):
        OpenVinoEncoder(model, 0, "mean", CPU, precision="int4")
    with pytest.raises(ValueError, match="CPU only"):
        OpenVinoEncoder(model, 0, "mean", torch.device("cuda"))
    with pytest.raises(ValueError, match="calibration"):
        OpenVinoEncoder(model, 0, "mean", CPU, precision="int8", calibration=[])
    with pytest.raises(ValueError, match="at least one"):
        pad_batch([], 0)
    ids, mask = pad_batch([[5, 6, 7], [8]], 0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


@pytest.mark.parametrize("fast_bf16", [False, True])
def test_bf16_on_a_cpu_without_bf16_instructions_warns(monkeypatch, caplog, fast_bf16):
    monkeypatch.setattr(P, "cpu_has_fast_bf16", lambda: fast_bf16)
    with caplog.at_level("WARNING", logger="e5kit"):
        assert P.resolve_precision("bf16", torch.device("cpu")) == "bf16"
    assert ("emulates bf16" in caplog.text) is (not fast_bf16)
