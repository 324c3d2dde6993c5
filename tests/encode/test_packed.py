"""Packed BERT (no compute on padding) equals the Hugging Face model on padded batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel

from e5kit.model.encoder import TransformerEncoder
from e5kit.model.packed import PackedBatch, PackedBert, supports_packed


@pytest.fixture(scope="module")
def hf_model(tiny_bert):
    return AutoModel.from_pretrained(tiny_bert, attn_implementation="sdpa").eval()


def batches():
    rng = np.random.default_rng(0)
    yield [[2, 7, 3]]  # one text
    yield [[2, 3], [2, 9, 10, 11, 3]]  # shortest possible beside a longer one
    yield [list(rng.integers(5, 60, size=n)) for n in (64, 64, 64)]  # no padding at all
    yield [list(rng.integers(5, 60, size=n)) for n in rng.integers(1, 64, size=37)]  # ragged
    yield [list(rng.integers(5, 60, size=n)) for n in (64, 64, 64, 40, 40, 9, 1)]  # sorted: full-width head + tail


@pytest.mark.parametrize("backend", ["packed", "jagged"])
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_packed_equals_hf_padded(hf_model, backend, pooling):
    hf = TransformerEncoder(hf_model, 0, pooling, torch.device("cpu"), torch.float32, backend="hf")
    packed = TransformerEncoder(hf_model, 0, pooling, torch.device("cpu"), torch.float32, backend=backend)
    assert packed.backend == backend and hf.backend == "hf"
    for ids in batches():
        for normalize in (True, False):
            want = hf.embed(ids, normalize=normalize)
            got = packed.embed(ids, normalize=normalize)
            assert got.shape == (len(ids), hf_model.config.hidden_size) and got.dtype == torch.float32
            assert (got - want).abs().max().item() <= 1e-5


def test_numpy_ids_are_accepted(hf_model):
    enc = TransformerEncoder(hf_model, 0, "mean", torch.device("cpu"), torch.float32)
    ids = [[2, 5, 6, 3], [2, 8, 3]]
    as_arrays = [np.asarray(x, dtype=np.int32) for x in ids]
    assert torch.equal(enc.embed(ids), enc.embed(as_arrays))


def test_auto_backend_is_packed_for_bert(hf_model):
    enc = TransformerEncoder(hf_model, 0, "mean", torch.device("cpu"), torch.float32)
    assert enc.backend == "packed" and enc.model is hf_model  # the HF module stays, for save()


def test_full_width_head_skips_the_padding_scatter():
    sorted_batch = PackedBatch([[2, 5, 6, 3], [2, 7, 8, 3], [2, 9, 3], [2, 3]], torch.device("cpu"))
    assert sorted_batch.head == 2 and sorted_batch.tail is not None
    tail = sorted_batch.tail
    assert (tail.batch, tail.width, tail.tokens, tail.head, tail.tail) == (2, 3, 5, 1, None)  # split once only
    assert PackedBatch([[2, 3], [2, 5, 3]], torch.device("cpu")).tail is None  # shortest first: no head
    assert PackedBatch([[2, 5, 3], [2, 6, 3]], torch.device("cpu")).tail is None  # no padding at all


def test_bad_backend_and_empty_sequences(hf_model):
    with pytest.raises(ValueError, match="auto, packed, jagged, hf"):
        TransformerEncoder(hf_model, 0, "mean", torch.device("cpu"), torch.float32, backend="onnx")
    with pytest.raises(ValueError, match="at least one token"):
        PackedBatch([[2, 3], []], torch.device("cpu"))
    with pytest.raises(ValueError, match="at least one token"):
        PackedBatch([], torch.device("cpu"))


def test_non_bert_models_fall_back(hf_model):
    class Cfg:
        model_type = "mistral"

    class Fake(torch.nn.Module):
        config = Cfg()

    assert "'mistral' is not one of 'bert', 'roberta', 'xlm-roberta'" in supports_packed(Fake())
    with pytest.raises(ValueError, match="'mistral' is not one of"):
        PackedBert(Fake())
    with pytest.raises(ValueError, match="attention"):
        PackedBert(hf_model, attention="flash")


def test_bf16_packed_close_to_fp32(hf_model):
    import copy

    ids = list(batches())[-1]
    ref = TransformerEncoder(hf_model, 0, "mean", torch.device("cpu"), torch.float32).embed(ids)
    low = TransformerEncoder(copy.deepcopy(hf_model), 0, "mean", torch.device("cpu"), torch.bfloat16).embed(ids)
    assert low.dtype == torch.float32  # pooled and normalized in fp32 whatever the model dtype
    assert torch.nn.functional.cosine_similarity(low, ref).min().item() >= 0.995


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 0.1)])
def test_fused_cpu_linears_equal_the_unfused_path(hf_model, dtype, tol):
    import copy

    from e5kit.model import packed as packed_mod

    if packed_mod._LINEAR_POINTWISE is None:
        pytest.skip("this torch build has no oneDNN fused linear (mkldnn._linear_pointwise)")
    model = copy.deepcopy(hf_model).to(dtype)
    fused, plain = PackedBert(model, fuse=True).eval(), PackedBert(model, fuse=False).eval()
    if dtype == torch.bfloat16 and fused.layers[0].cpu_weights is None:
        from e5kit.encode.precision import cpu_has_fast_bf16

        assert not cpu_has_fast_bf16()  # only a CPU without bf16 instructions may refuse it (AVX2-only ones do)
        pytest.skip("oneDNN has no bf16 linear kernels on this CPU (needs AVX512 or AVX-NE-CONVERT)")
    assert all(layer.cpu_weights is not None for layer in fused.layers)
    assert all(layer.cpu_weights is None for layer in plain.layers)
    calls = []
    real = packed_mod._LINEAR_POINTWISE
    for ids in batches():
        x = PackedBatch(ids, torch.device("cpu"))
        with torch.inference_mode():
            want = plain(x).float()
            # count the fused calls, so the test fails if the fused path silently stops being taken
            packed_mod._LINEAR_POINTWISE = _Counting(real, calls)
            try:
                got = fused(x).float()
            finally:
                packed_mod._LINEAR_POINTWISE = real
        assert got.shape == want.shape
        assert (got - want).abs().max().item() <= tol * max(1.0, want.abs().max().item())
    assert len(calls) == 4 * len(model.encoder.layer) * len(list(batches()))


class _Counting:
    """Wraps torch.ops.mkldnn._linear_pointwise (and its .binary overload), recording each call."""

    def __init__(self, op, calls):
        self.op, self.calls = op, calls

    def __call__(self, *args):
        self.calls.append("unary")
        return self.op(*args)

    def binary(self, *args):
        self.calls.append("binary")
        return self.op.binary(*args)


def test_fusion_is_skipped_where_it_cannot_apply(hf_model):
    from e5kit.model.packed import fused_cpu_weights

    assert fused_cpu_weights([torch.nn.Linear(4, 4).half()]) is None  # no fused fp16 on CPU
    assert fused_cpu_weights([torch.nn.Identity()]) is None
    quantized = TransformerEncoder(hf_model, 0, "mean", torch.device("cpu"), torch.float32, int8=True)
    layer = quantized.runner.layers[0]
    assert type(layer.up) is not torch.nn.Linear and layer.cpu_weights is None  # int8 keeps its own linears
    ids = list(batches())[-1]  # and the int8 model still runs and stays close to fp32
    ref = TransformerEncoder(hf_model, 0, "mean", torch.device("cpu"), torch.float32).embed(ids)
    assert torch.nn.functional.cosine_similarity(quantized.embed(ids), ref).min().item() >= 0.9
    fused = PackedBert(hf_model, fuse=True)  # with autograd on (trainable weights) the plain ops run
    with torch.enable_grad():
        out = fused(PackedBatch([[2, 5, 3]], torch.device("cpu")))
    assert out.requires_grad and out.grad_fn is not None


def test_bucket_rows_bounds_waste_and_shape_count():
    from e5kit.model.packed import bucket_rows

    sizes = [bucket_rows(n) for n in range(1, 16385)]
    assert all(0 <= b - n <= max(15, n / 16) for n, b in zip(range(1, 16385), sizes, strict=True))
    assert sizes == sorted(sizes) and bucket_rows(16384) == 16384 and bucket_rows(1) == 16
    assert len(set(sizes)) <= 16 * 11  # ~16 row counts per doubling: oneDNN's kernel cache stays small


def test_fused_forward_pads_rows_to_a_bucket_and_drops_them(hf_model):
    """The padded rows never reach attention or the output: equal to the unfused, unpadded forward."""
    from e5kit.model import packed as packed_mod

    if packed_mod._LINEAR_POINTWISE is None:
        pytest.skip("this torch build has no oneDNN fused linear (mkldnn._linear_pointwise)")
    ids = [[2] + [7 + i % 40 for i in range(n)] + [3] for n in (61, 50, 33, 20, 3)]  # 177 tokens -> 192 rows
    batch = PackedBatch(ids, torch.device("cpu"))
    assert batch.tokens == 177 and packed_mod.bucket_rows(177) == 192
    with torch.inference_mode():
        got = PackedBert(hf_model, fuse=True).eval()(batch)
        want = PackedBert(hf_model, fuse=False).eval()(batch)
    assert got.shape == want.shape == (177, hf_model.config.hidden_size)
    assert (got - want).abs().max().item() <= 1e-5
