"""Tiny XLM-RoBERTa checkpoint for the packed-path tests (built as in tests/model/tiny_family.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.model.tiny_family import make_tiny_xlmr


@pytest.fixture(scope="session")
def tiny_xlmr_encode(tmp_path_factory) -> Path:
    return make_tiny_xlmr(tmp_path_factory.mktemp("ckpt-xlmr-encode"), seed=3)
