"""e5kit's vectors equal the model card's reference code (AutoModel + average_pool + F.normalize)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

from e5kit import E5
from tests.texts import mixed_texts


def reference_embeddings(path, texts: list[str], max_length: int, batch_size: int = 16) -> np.ndarray:
    """The intfloat/e5-base-unsupervised model card's code, batch by batch in input order."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], max_length=max_length, padding=True, truncation=True,
                          return_tensors="pt")
        with torch.no_grad():
            last = model(**batch).last_hidden_state
        last = last.masked_fill(~batch["attention_mask"][..., None].bool(), 0.0)
        pooled = last.sum(dim=1) / batch["attention_mask"].sum(dim=1)[..., None]
        out.append(F.normalize(pooled, p=2, dim=1).numpy())
    return np.concatenate(out)


@pytest.mark.parametrize("role", ["query", "passage"])
def test_tiny_bert_matches_reference(tiny_e5, role):
    texts = mixed_texts(220)
    e5 = E5(tiny_e5)
    assert e5.prompts == {"query": "query: ", "passage": "passage: "}
    got = e5.encode_queries(texts) if role == "query" else e5.encode_passages(texts)
    prefix = f"{role}: "
    # the shared prompt policy: a text that already carries any of the model's role prompts gets no other
    marked = ("query: ", "passage: ")
    expected = reference_embeddings(tiny_e5, [t if t.startswith(marked) else prefix + t for t in texts],
                                    e5.max_seq_length)
    assert got.dtype == np.float32 and got.shape == (len(texts), e5.dim)
    diff = float(np.abs(got - expected).max())
    print(f"tiny BERT ({role}) max |diff| = {diff:.2e} over {len(texts)} texts")
    assert diff <= 1e-5
    assert e5.last_stats.truncated > 0  # the mix has texts over the 64-token limit


@pytest.mark.slow
def test_minilm_matches_reference(minilm_path):
    texts = mixed_texts(240, seed=1)
    e5 = E5(minilm_path)
    assert e5.prompts == {}  # all-MiniLM-L6-v2 is evaluated without prefixes
    assert e5.max_seq_length == 256  # its sentence-transformers max_seq_length, not the 512 positions
    got = e5.encode(texts)
    expected = reference_embeddings(minilm_path, texts, 256)
    diff = float(np.abs(got - expected).max())
    print(f"all-MiniLM-L6-v2 max |diff| = {diff:.2e} over {len(texts)} texts")
    assert diff <= 1e-5
    assert e5.last_stats.truncated > 0


def test_unnormalized_is_plain_mean(tiny_bert):
    e5 = E5(tiny_bert)
    raw = e5.encode(["some text here", "protein"], normalize=False)
    unit = e5.encode(["some text here", "protein"])
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), unit, atol=1e-6)
