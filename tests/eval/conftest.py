"""A tiny E5-named checkpoint whose tokenizer knows real words, so embeddings differ by content.

(tests/conftest.py's tokenizer is built from `vocab_file`, which transformers 5 ignores there,
so every word becomes [UNK]; here the vocabulary is passed as a dict.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import _vocab, make_tiny_bert


@pytest.fixture(scope="session")
def word_e5(tmp_path_factory) -> Path:
    from transformers import BertTokenizerFast

    folder = make_tiny_bert(tmp_path_factory.mktemp("ckpt-word-e5"), name="e5-small-unsupervised", seed=2)
    vocab = {w: i for i, w in enumerate(_vocab())}
    BertTokenizerFast(vocab=vocab, do_lower_case=True, model_max_length=64).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def word_model(word_e5):
    from e5kit import E5

    return E5(word_e5)
