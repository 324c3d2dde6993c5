"""Issue 15 item 2: the packed fast path covers XLM-RoBERTa (and RoBERTa): same layers as BERT, positions
padding_idx + 1 + position counted over non-padding tokens. fp32 equals transformers' model; bf16 stays close."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, RobertaConfig, RobertaModel

from e5kit import E5
from e5kit.model.encoder import TransformerEncoder
from e5kit.model.packed import PackedBatch, PackedBert, supports_packed
from tests.model.tiny_family import family_texts

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def xlmr(tiny_xlmr_encode):
    return AutoModel.from_pretrained(tiny_xlmr_encode, attn_implementation="sdpa").eval()


def roberta_model() -> torch.nn.Module:
    torch.manual_seed(5)
    cfg = RobertaConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=66, pad_token_id=1, type_vocab_size=1)
    return RobertaModel(cfg).eval()


def batches(vocab: int):
    rng = np.random.default_rng(1)
    yield [[0, 7, 2]]
    yield [[0, 2], [0, 9, 10, 11, 2]]
    yield [[0, *rng.integers(5, vocab, size=62), 2] for _ in range(3)]  # full width, no padding
    yield [[0, *rng.integers(5, vocab, size=n), 2] for n in rng.integers(0, 62, size=29)]  # ragged
    yield [[0, *rng.integers(5, vocab, size=n), 2] for n in (62, 62, 40, 40, 9, 0)]  # full-width head + tail
    yield [[0, 9, 1, 1, 12, 2], [0, 1, 2], [0, 5, 6, 7, 8, 9, 10, 2]]  # the pad id inside a text (token-id input)


@pytest.mark.parametrize("which", ["xlm-roberta", "roberta"])
@pytest.mark.parametrize("backend", ["packed", "jagged"])
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_packed_roberta_equals_hf(xlmr, which, backend, pooling):
    model = xlmr if which == "xlm-roberta" else roberta_model()
    assert supports_packed(model) is None
    hf = TransformerEncoder(model, 1, pooling, CPU, torch.float32, backend="hf")
    fast = TransformerEncoder(model, 1, pooling, CPU, torch.float32, backend=backend)
    worst = 0.0
    for ids in batches(model.config.vocab_size):
        for normalize in (True, False):
            want, got = hf.embed(ids, normalize=normalize), fast.embed(ids, normalize=normalize)
            assert got.shape == want.shape
            worst = max(worst, (got - want).abs().max().item())
    print(f"{which} {backend} {pooling}: max |diff| to transformers = {worst:.2e}")
    assert worst <= 1e-5


def test_position_ids_follow_transformers(xlmr):
    from transformers.models.xlm_roberta.modeling_xlm_roberta import XLMRobertaEmbeddings

    ids = [[0, 9, 1, 12, 2], [0, 2], [0, 5, 6, 2]]
    batch = PackedBatch(ids, CPU)
    got = PackedBert(xlmr, fuse=False).position_ids(batch)
    want = [XLMRobertaEmbeddings.create_position_ids_from_input_ids(torch.tensor([row]), 1)[0] for row in ids]
    assert got.tolist() == torch.cat(want).tolist() == [2, 3, 1, 4, 5, 2, 3, 2, 3, 4, 5]


def test_xlmr_bf16_stays_close_to_fp32(tiny_xlmr_encode):
    texts = family_texts(120, seed=2)
    ref = E5(tiny_xlmr_encode, device="cpu").encode_passages(texts)
    low = E5(tiny_xlmr_encode, device="cpu", precision="bf16")
    assert low.engine.encoder.backend == "packed"
    got = low.encode_passages(texts)
    cos = (got * ref).sum(axis=1)
    print(f"tiny XLM-R bf16 packed: min cosine to fp32 = {cos.min():.5f}")
    assert cos.min() >= 0.995  # the bound tests/encode/test_precision.py holds BERT to
    assert np.abs(got - ref).max() > 1e-6  # really bf16, not fp32 again
