"""Fixtures for training tests (helpers live in helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.train.helpers import write_pairs


@pytest.fixture()
def pairs_file(tmp_path) -> Path:
    return write_pairs(tmp_path / "pairs.jsonl", 200)
