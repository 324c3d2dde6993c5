"""Issue 15 item 6: training starts from an XLM-RoBERTa init (a fresh tiny one built here), never sends
token_type_ids, and its checkpoints load in E5 on the packed path with the model card's vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from e5kit.train.trainer import train
from tests.model.test_exactness import reference_embeddings
from tests.model.tiny_family import family_texts, make_tiny_mistral, make_tiny_xlmr
from tests.train.helpers import tiny_config, write_pairs


@pytest.fixture(scope="module")
def xlmr_init(tmp_path_factory):
    return make_tiny_xlmr(tmp_path_factory.mktemp("xlmr-init"), name="multilingual-e5-small", seed=11)


def test_a_fresh_tiny_xlmr_trains_and_loads_as_e5(xlmr_init, tmp_path, monkeypatch):
    from safetensors.torch import load_file
    from transformers import XLMRobertaModel

    from e5kit import E5

    seen = []
    forward = XLMRobertaModel.forward

    def spy(self, *args, **kwargs):
        seen.append(sorted(k for k, v in kwargs.items() if v is not None))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(XLMRobertaModel, "forward", spy)
    pairs = write_pairs(tmp_path / "pairs.jsonl", 60)
    final = train(tiny_config(xlmr_init, pairs, tmp_path / "run", steps=4, save_every=4))
    monkeypatch.undo()
    assert seen and all(kw == ["attention_mask", "input_ids"] for kw in seen)  # never token_type_ids
    start, end = load_file(str(xlmr_init / "model.safetensors")), load_file(str(final / "model.safetensors"))
    word = "embeddings.word_embeddings.weight"
    assert (start[word] - end[word]).abs().max().item() > 0  # it learned
    pos = "embeddings.position_embeddings.weight"
    assert torch.equal(start[pos], end[pos])  # frozen as for BERT
    e5 = E5(final)
    assert e5.checkpoint.model_type == "xlm-roberta" and e5.engine.encoder.backend == "packed"
    assert e5.max_seq_length == 64  # the init's limit (66 positions less XLM-R's offset of 2)
    texts = family_texts(60, seed=9)
    diff = np.abs(e5.encode(texts) - reference_embeddings(final, texts, e5.max_seq_length)).max()
    assert diff <= 1e-5


def test_a_mistral_init_trains_with_last_token_pooling(tmp_path):
    from sentence_transformers import SentenceTransformer

    from e5kit import E5

    init = make_tiny_mistral(tmp_path, padding_side="left")  # training pads on the right whatever the init says
    pairs = write_pairs(tmp_path / "pairs.jsonl", 40)
    final = train(tiny_config(init, pairs, tmp_path / "run", steps=3, save_every=3))
    pooling = json.loads((final / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_lasttoken"] is True and pooling["pooling_mode_mean_tokens"] is False
    e5 = E5(final)
    assert e5.checkpoint.pooling == "last"
    texts = family_texts(40, seed=4)
    got = e5.encode(texts)
    assert np.abs(got - E5(init).encode(texts)).max() > 1e-4  # it learned
    # the saved tokenizer appends EOS itself (as e5-mistral's current one), so sentence-transformers is the card
    assert np.abs(got - SentenceTransformer(str(final), device="cpu").encode(texts)).max() <= 1e-5


def test_training_pools_as_the_init_does():
    """The embedding used for the loss is the init's pooling: the last token for a decoder."""
    from e5kit.train.gradcache import embed

    hidden = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)

    class Model(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            return type("Out", (), {"last_hidden_state": hidden})()

    batch = {"input_ids": torch.zeros(2, 3, dtype=torch.long), "attention_mask": torch.tensor([[1, 1, 0], [1, 1, 1]])}
    last = embed(Model(), batch, pooling="last")
    want = torch.nn.functional.normalize(torch.stack([hidden[0, 1], hidden[1, 2]]), dim=-1)
    assert torch.allclose(last, want)
    assert not torch.allclose(embed(Model(), batch), want)  # mean by default
