"""Tiny XLM-RoBERTa and Mistral checkpoints, made once per session (see tests/model/tiny_family.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.model.tiny_family import make_tiny_mistral, make_tiny_xlmr


@pytest.fixture(scope="session")
def tiny_xlmr(tmp_path_factory) -> Path:
    return make_tiny_xlmr(tmp_path_factory.mktemp("ckpt-xlmr"))


@pytest.fixture(scope="session")
def tiny_mistral(tmp_path_factory) -> Path:
    return make_tiny_mistral(tmp_path_factory.mktemp("ckpt-mistral"))
