"""A tiny E5-named checkpoint (its own seed) and the E5 loaded from it, shared by the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_tiny_bert


@pytest.fixture(scope="session")
def word_e5(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("ckpt-word-e5"), name="e5-small-unsupervised", seed=2)


@pytest.fixture(scope="session")
def word_model(word_e5):
    from e5kit import E5

    return E5(word_e5)
