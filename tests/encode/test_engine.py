"""The encode loop: compact tokens, chunked streaming equals one-shot, stats, batching and threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from e5kit import E5
from e5kit.encode import engine as engine_mod
from e5kit.encode.batching import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MAX_TOKENS_CPU,
    TokenBudgetBatcher,
    batch_budget,
    default_max_tokens,
)
from e5kit.encode.threads import configure_threads, usable_cpus
from tests.texts import mixed_texts


@pytest.fixture(scope="module")
def model(tiny_e5):
    return E5(tiny_e5, device="cpu", max_tokens_per_batch=512)


def test_compact_tokens_match_tokenizer(model, monkeypatch):
    monkeypatch.setattr(engine_mod, "TOKENIZE_TEXTS", 7)  # several tokenizer calls per chunk
    texts = mixed_texts(50, seed=5)
    flat, offsets, truncated = model.engine.tokenize_compact(texts)
    want = model.engine.tokenizer(texts)
    assert flat.dtype == np.int32 and offsets.shape == (51,)
    assert [flat[offsets[i]:offsets[i + 1]].tolist() for i in range(50)] == want.ids
    assert truncated == want.truncated > 0
    empty = model.engine.tokenize_compact([])
    assert empty[0].size == 0 and empty[1].tolist() == [0]


def test_streaming_in_small_chunks_equals_one_shot(model):
    texts = mixed_texts(90, seed=6)
    whole = model.encode(texts)
    stats = model.last_stats
    assert stats.texts == 90 and stats.batches >= 2 and stats.tokens <= stats.padded_tokens
    parts = list(model.iter_encode(iter(texts), chunk_size=16))
    assert [len(p) for p in parts] == [16] * 5 + [10]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)
    assert model.last_stats.texts == 90 and model.last_stats.tokens == stats.tokens


def test_budget_knob_changes_batches_not_results(tiny_e5):
    texts = mixed_texts(60, seed=7)
    small, large = E5(tiny_e5, max_tokens_per_batch=128), E5(tiny_e5, max_tokens_per_batch=100000)
    a, b = small.encode(texts), large.encode(texts)
    assert small.last_stats.batches > large.last_stats.batches
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "4096"])
def test_batcher_rejects_bad_budgets(bad):
    with pytest.raises(ValueError, match="positive int"):
        TokenBudgetBatcher(max_tokens=bad)


def test_batcher_covers_every_index_within_budget():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 300, size=500).tolist() + [1000]  # one over the budget alone
    batches = TokenBudgetBatcher(max_tokens=900, max_batch_size=40).batches(lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 40
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 900
    assert TokenBudgetBatcher().batches([]) == []


def test_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert 1 <= usable_cpus() <= (len(__import__("os").sched_getaffinity(0)))
        assert configure_threads(1) == 1 == torch.get_num_threads()
        for bad in (0, -1, 1.5, True):
            with pytest.raises(ValueError, match="positive int"):
                configure_threads(bad)
    finally:
        torch.set_num_threads(before)


def test_trim_heap_runs_here():
    from e5kit.encode.memory import trim_heap

    assert trim_heap() in (True, False)
    import platform

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert trim_heap() is True


def test_heap_growth_limit_is_opt_in(model, monkeypatch):
    from e5kit.encode import memory

    monkeypatch.delenv("E5KIT_MALLOPT", raising=False)
    assert memory.limit_heap_growth() is False  # off unless E5KIT_MALLOPT=1


def test_default_budget_depends_on_the_device(tiny_e5):
    assert default_max_tokens("cpu") == DEFAULT_MAX_TOKENS_CPU == 4096
    assert default_max_tokens("cuda") == DEFAULT_MAX_TOKENS == 16384
    assert batch_budget("cpu") == 4096 and batch_budget("cuda", 300) == 300
    with pytest.raises(ValueError, match="batch_tokens must be a positive int"):
        batch_budget("cpu", 0, name="batch_tokens")
    assert E5(tiny_e5, device="cpu").engine.batcher.max_tokens == DEFAULT_MAX_TOKENS_CPU
    assert E5(tiny_e5, device="cpu", max_tokens_per_batch=300).engine.batcher.max_tokens == 300


def test_heap_is_trimmed_once_per_chunk_not_per_batch(model, monkeypatch):
    calls = []
    monkeypatch.setattr(engine_mod, "trim_heap", lambda: calls.append(1) or True)
    texts = mixed_texts(40, seed=8)
    parts = list(model.iter_encode(iter(texts), chunk_size=16))  # 3 chunks, several batches each
    assert len(parts) == 3 and model.last_stats.batches > 3
    assert len(calls) == 3
