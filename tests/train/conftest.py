"""Fixtures for training tests (helpers live in helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.train.helpers import make_tiny_model, write_pairs


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random BERT whose tokenizer knows the test words."""
    path = make_tiny_model(tmp_path_factory.mktemp("train-ckpt"))
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(path).tokenize("protein cells") == ["protein", "cells"]
    return path


@pytest.fixture()
def pairs_file(tmp_path) -> Path:
    return write_pairs(tmp_path / "pairs.jsonl", 200)
