"""The one check on real evaluation data: BM25 on SciFact lands within 0.01 of Anserini's 0.6789."""

from __future__ import annotations

import pytest

from e5kit.eval.models import BM25Model
from e5kit.eval.registry import get_dataset
from e5kit.eval.tasks import retrieval

ANSERINI_SCIFACT_FLAT = 0.6789


@pytest.mark.slow
def test_bm25_scifact_matches_anserini(shared_data):
    data = get_dataset("scifact", shared_data).load()["data"]
    assert data.counts() == {"corpus": 5183, "queries": 300, "qrels": 339, "dropped_queries": 0}
    out = retrieval.evaluate(BM25Model(show_progress=False), data)
    assert abs(out.main_value - ANSERINI_SCIFACT_FLAT) < 0.01, out.main_value
