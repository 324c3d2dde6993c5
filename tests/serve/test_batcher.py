"""DynamicBatcher with a recording fake encoder: packing, fairness, limits, cancel, shutdown, failures."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from e5kit.encode.batching import TokenBudgetBatcher
from e5kit.serve.batcher import DynamicBatcher, QueueFullError, ShuttingDownError


class FakeEncoder:
    """A stand-in for E5's batch interface: vector of an input = (length, sum of ids, 1, 0...); records
    each batch; can be held at a gate."""

    def __init__(self, dim: int = 4, fail_on: int | None = None) -> None:
        self.dim, self.fail_on = dim, fail_on
        self.batches: list[list[list[int]]] = []
        self.gate = threading.Event()
        self.gate.set()

    device_type = "cpu"

    def embed_token_ids(self, ids, *, normalize=True):
        self.gate.wait(10)
        self.batches.append([list(x) for x in ids])
        if self.fail_on is not None and any(self.fail_on in x for x in ids):
            raise RuntimeError("model failed")
        out = torch.zeros(len(ids), self.dim)
        for r, x in enumerate(ids):
            out[r, 0], out[r, 1], out[r, 2] = len(x), sum(x), 1.0
        return out.numpy()


def seqs(lengths, start=1):
    return [[start + i] * n for i, n in enumerate(lengths)]


def expected(ids, normalize):
    raw = np.array([[len(x), sum(x), 1.0, 0.0] for x in ids], dtype=np.float32)
    return raw / np.linalg.norm(raw, axis=1, keepdims=True) if normalize else raw


def test_results_in_input_order_raw_and_normalized():
    enc = FakeEncoder()
    b = DynamicBatcher(enc, 4, max_batch_tokens=64).start()
    try:
        ids = seqs([5, 1, 9, 3, 3, 7])
        np.testing.assert_allclose(b.submit(ids, normalize=False).future.result(5), expected(ids, False))
        np.testing.assert_allclose(b.submit(ids).future.result(5), expected(ids, True), rtol=1e-6)
    finally:
        b.close()
    assert b.queue_tokens == 0 and b.queue_inputs == 0


def test_single_job_cut_like_offline_token_budget_batcher():
    lengths = [3, 17, 8, 8, 30, 1, 12, 5, 22, 9, 2, 16]
    enc = FakeEncoder()
    b = DynamicBatcher(enc, 4, max_batch_tokens=48, max_batch_size=512).start()
    try:
        b.submit(seqs(lengths)).future.result(5)
    finally:
        b.close()
    offline = TokenBudgetBatcher(max_tokens=48).batches(lengths)
    assert [sorted(len(x) for x in batch) for batch in enc.batches] == \
        [sorted(lengths[i] for i in batch) for batch in offline]
    for batch in enc.batches:
        assert len(batch) * max(len(x) for x in batch) <= 48 or len(batch) == 1


def test_small_request_is_not_starved_by_a_huge_one():
    enc = FakeEncoder()
    enc.gate.clear()  # hold the worker so both requests wait together
    b = DynamicBatcher(enc, 4, max_batch_tokens=40, max_batch_size=4).start()
    try:
        huge = b.submit(seqs([10] * 200, start=1))
        time.sleep(0.05)  # the worker is now held inside its first batch of the huge job
        small = b.submit(seqs([10, 10], start=1000))
        enc.gate.set()
        small.future.result(5)
        batches_before_small = next(i for i, batch in enumerate(enc.batches) if any(x[0] >= 1000 for x in batch))
        huge.future.result(10)
        assert batches_before_small <= 2, "the small request waited behind the huge one"
        last_huge = max(i for i, batch in enumerate(enc.batches) if any(x[0] < 1000 for x in batch))
        assert last_huge > 40, "the huge request should still have had most of its batches to run"
    finally:
        b.close()


def test_batch_mixes_clients_and_respects_budget_and_size():
    enc = FakeEncoder()
    enc.gate.clear()
    b = DynamicBatcher(enc, 4, max_batch_tokens=100, max_batch_size=6).start()
    try:
        b.submit([[1]])  # the worker takes it and blocks at the gate
        time.sleep(0.05)
        jobs = [b.submit(seqs([4, 6, 8], start=10 * k)) for k in range(1, 5)]
        enc.gate.set()
        for j in jobs:
            j.future.result(5)
    finally:
        b.close()
    for batch in enc.batches:
        assert len(batch) <= 6 and len(batch) * max(len(x) for x in batch) <= 100
    assert len({x[0] // 10 for x in enc.batches[1]}) > 1, "one batch should carry several clients' inputs"


def test_queue_full_refuses_with_retry_after_and_bounded_tokens():
    enc = FakeEncoder()
    enc.gate.clear()
    b = DynamicBatcher(enc, 4, max_queue_tokens=50).start()
    try:
        b.submit(seqs([1]))
        time.sleep(0.05)
        b.submit(seqs([20, 20]))
        with pytest.raises(QueueFullError) as info:
            b.submit(seqs([20]))
        assert 1 <= info.value.retry_after <= 60 and b.queue_tokens == 40
    finally:
        enc.gate.set()
        b.close()


def test_cancel_drops_queued_inputs_and_they_are_never_run():
    enc = FakeEncoder()
    enc.gate.clear()
    b = DynamicBatcher(enc, 4, max_batch_tokens=16).start()
    try:
        b.submit([[1]])
        time.sleep(0.05)
        job = b.submit(seqs([5] * 10, start=500))
        assert b.queue_inputs == 10
        assert b.cancel(job) == 10
        assert b.queue_inputs == 0 and b.queue_tokens == 0 and job.future.cancelled()
        enc.gate.set()
    finally:
        b.close()
    assert not any(x[0] >= 500 for batch in enc.batches for x in batch)


def test_close_drains_queued_work_then_refuses_new():
    enc = FakeEncoder()
    enc.gate.clear()
    b = DynamicBatcher(enc, 4, max_batch_tokens=8).start()
    jobs = [b.submit(seqs([4, 4, 4])) for _ in range(3)]
    closer = threading.Thread(target=b.close)
    closer.start()
    time.sleep(0.05)
    with pytest.raises(ShuttingDownError):
        b.submit([[1]])
    enc.gate.set()
    closer.join(10)
    assert all(j.future.done() and not j.future.cancelled() for j in jobs)
    assert not b.running


def test_model_failure_fails_only_that_batch_and_keeps_serving():
    enc = FakeEncoder(fail_on=666)
    b = DynamicBatcher(enc, 4).start()
    try:
        with pytest.raises(RuntimeError, match="model failed"):
            b.submit([[666, 1]]).future.result(5)
        assert b.submit([[1, 2]]).future.result(5).shape == (1, 4)
    finally:
        b.close()


@pytest.mark.parametrize("bad", [[], [[]], [[1], []]])
def test_submit_rejects_empty(bad):
    b = DynamicBatcher(FakeEncoder(), 4)
    with pytest.raises(ValueError, match="non-empty"):
        b.submit(bad)


@pytest.mark.parametrize("name", ["max_batch_tokens", "max_batch_size", "max_queue_tokens"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True, "8"])
def test_constructor_rejects_bad_limits(name, value):
    with pytest.raises(ValueError, match=name):
        DynamicBatcher(FakeEncoder(), 4, **{name: value})


def test_queue_sheds_beyond_max_wait_at_the_measured_speed():
    enc = FakeEncoder()
    enc.gate.clear()
    b = DynamicBatcher(enc, 4, max_queue_tokens=10_000, max_wait_s=1.0).start()
    try:
        b.submit([[1]])
        time.sleep(0.05)
        b._tokens_per_s = 100.0  # as measured on a slow machine: 1 s of work = 100 tokens
        b.submit(seqs([40, 40]))  # 80 tokens waiting + 1 running
        with pytest.raises(QueueFullError, match="about 1.2 s of work waiting") as info:
            b.submit(seqs([40]))
        assert info.value.retry_after == pytest.approx(1.0)
        with pytest.raises(QueueFullError, match="about 1.0 s"):
            b.submit(seqs([20]))  # 80 waiting + 1 running + 20 = 101 tokens: the running batch counts too
        b._tokens_per_s = 1000.0  # a faster model takes the same request
        b.submit(seqs([40]))
        b.submit(seqs([18]))
    finally:
        enc.gate.set()
        b.close()


def test_a_lone_request_is_admitted_whatever_its_size():
    enc = FakeEncoder()
    b = DynamicBatcher(enc, 4, max_wait_s=0.001)
    b._tokens_per_s = 1.0
    assert b.submit(seqs([50, 50])).remaining == 2


@pytest.mark.parametrize("value", [0, -1.0, "1"])
def test_bad_max_wait(value):
    with pytest.raises(ValueError, match="max_wait_s"):
        DynamicBatcher(FakeEncoder(), 4, max_wait_s=value)


def test_every_job_moves_each_batch_and_the_oldest_finishes_first():
    enc = FakeEncoder()
    enc.gate.clear()
    b = DynamicBatcher(enc, 4, max_batch_tokens=80).start()  # 8 inputs of length 10 per batch
    try:
        b.submit([[1]])
        time.sleep(0.05)
        jobs = [b.submit(seqs([10] * 4, start=100 * (k + 1))) for k in range(3)]  # A, B, C
        enc.gate.set()
        for j in jobs:
            j.future.result(5)
    finally:
        b.close()
    first = [x[0] // 100 for x in enc.batches[1]]
    assert first.count(1) == 4, "the oldest request should complete in the first batch"
    assert first.count(2) >= 1 and first.count(3) >= 1, "every waiting request should move forward"


def test_check_capacity_sheds_early_without_a_request_in_hand():
    enc = FakeEncoder()
    enc.gate.clear()
    b = DynamicBatcher(enc, 4, max_wait_s=1.0).start()
    try:
        b.check_capacity()  # empty queue: always room
        b.submit([[1]])
        time.sleep(0.05)
        b._tokens_per_s = 10.0
        b.submit(seqs([30]))
        with pytest.raises(QueueFullError, match="about 3.1 s"):
            b.check_capacity()
    finally:
        enc.gate.set()
        b.close()
    with pytest.raises(ShuttingDownError):
        b.check_capacity()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="thread names are read from Linux /proc")
def test_worker_thread_is_named_in_the_os_so_its_cpu_time_can_be_told_apart():
    """top -H and bench_serve's per-thread CPU split rely on the model thread's OS-level name."""
    enc = FakeEncoder()
    seen = {}

    def embed(ids, *, normalize=True):
        seen["comm"] = Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()
        return FakeEncoder.embed_token_ids(enc, ids, normalize=normalize)

    enc.embed_token_ids = embed
    b = DynamicBatcher(enc, 4).start()
    try:
        b.submit(seqs([3])).future.result(5)
    finally:
        b.close()
    assert seen["comm"] == "e5kit-batcher"
    assert Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip() != "e5kit-batcher"
