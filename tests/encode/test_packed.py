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


def test_bad_backend_and_empty_sequences(hf_model):
    with pytest.raises(ValueError, match="auto, packed, jagged, hf"):
        TransformerEncoder(hf_model, 0, "mean", torch.device("cpu"), torch.float32, backend="onnx")
    with pytest.raises(ValueError, match="at least one token"):
        PackedBatch([[2, 3], []], torch.device("cpu"))
    with pytest.raises(ValueError, match="at least one token"):
        PackedBatch([], torch.device("cpu"))


def test_non_bert_models_fall_back(hf_model):
    class Cfg:
        model_type = "roberta"

    class Fake(torch.nn.Module):
        config = Cfg()

    assert "roberta" in supports_packed(Fake())
    with pytest.raises(ValueError, match="not 'bert'"):
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
