"""Issue 15 item 7: the bench's XLM-R-base shape (random weights) builds, loads on the packed path, counts about
1.5 tokens per synthetic word (as XLM-R on English), and runs side by side with sentence-transformers."""

from __future__ import annotations

import numpy as np

from e5kit.bench import checkpoints as C
from e5kit.bench.encode import EncodeBenchSettings


def test_random_xlmr_shape_loads_packed(tmp_path):
    from sentence_transformers import SentenceTransformer

    from e5kit import E5

    path = C.make_random_xlmr(tmp_path / "rx", layers=1, hidden=16, heads=2, intermediate=32, positions=64,
                              vocab=30000)
    m = E5(path)
    assert m.checkpoint.model_type == "xlm-roberta" and m.engine.encoder.backend == "packed"
    assert m.dim == 16 and m.max_seq_length == 64 and m.info()["parameters"] > 30000 * 16
    texts = C.synthetic_texts(6, seed=2)
    assert m.count_tokens(texts[:3])[0] == 64  # over the limit, as the BERT shape
    short = " ".join(C.synthetic_words()[:10])
    assert 10 + 2 <= m.count_tokens([short])[0] <= 2 * 10 + 2  # words split into at most two pieces here
    st = SentenceTransformer(str(path), device="cpu")
    assert np.abs(st.encode(texts, normalize_embeddings=True) - m.encode(texts)).max() <= 1e-5


def test_xlmr_base_is_a_size_but_not_in_both():
    assert EncodeBenchSettings(sizes=("xlmr-base",)).check().sizes == ("xlmr-base",)
    assert "xlmr-base" not in EncodeBenchSettings().sizes
