"""Dynamic batching: requests from many clients share token-budget batches run by one worker thread.

Each request becomes a job whose inputs wait, sorted by length, in a bounded queue. The worker
builds one batch at a time: the oldest job gives its longest input, which sets the batch width;
then every other waiting job gives one input (its longest that fits the width); then the rest of
the batch is filled first come, first served, always within batch size x width <= the token
budget. So batches are packed from many clients with little padding; a huge request cannot starve
small ones (every waiting job moves forward in every batch it fits); and under load the oldest
requests finish first rather than all finishing together at the end. A single job alone is cut
exactly as `TokenBudgetBatcher` cuts it offline (longest first, greedy fill).

The model runs in the worker thread (torch releases the GIL), the event loop stays free. Memory is
bounded: `submit` refuses work beyond `max_queue_tokens` (a hard cap on memory) or beyond
`max_wait_s` seconds of work at the measured model speed (a cap on latency that adapts to the
hardware), with a QueueFullError that carries a retry delay; a cancelled job's waiting inputs
leave the queue at once.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from e5kit.errors import E5kitError
from e5kit.options import positive_int

log = logging.getLogger("e5kit.serve")


def name_native_thread(name: str) -> None:
    """Give the calling thread `name` (15 bytes) in the OS, so `top -H` and /proc show the model thread (and
    the torch threads it starts, which inherit the name). Linux only; elsewhere nothing happens."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


class QueueFullError(E5kitError):
    """The queue cannot take the request now; `retry_after` (s) estimates when it could."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ShuttingDownError(E5kitError):
    """The batcher is closing and takes no new work."""


class BatchObserver(Protocol):
    def observe_batch(self, *, inputs: int, tokens: int, padded_tokens: int, seconds: float) -> None: ...


@dataclass(eq=False)
class Job:
    """One request's inputs, results and completion future (set from the worker thread)."""

    ids: Sequence[Sequence[int]]
    normalize: bool
    dim: int
    pending: list[tuple[int, int]] = field(default_factory=list)  # (length, index), ascending
    future: Future = field(default_factory=Future)
    remaining: int = 0
    tokens: int = 0
    cancelled: bool = False
    out: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.pending = sorted((len(x), i) for i, x in enumerate(self.ids))
        self.remaining = len(self.ids)
        self.tokens = sum(length for length, _ in self.pending)
        self.out = np.empty((len(self.ids), self.dim), dtype=np.float32)


class DynamicBatcher:
    """Queue + one worker thread that embeds token-id lists with `model.embed_token_ids` in shared batches."""

    def __init__(self, model: Any, dim: int, *, max_batch_tokens: int = 16384, max_batch_size: int = 256,
                 max_queue_tokens: int = 1 << 20, max_wait_s: float | None = None,
                 observer: BatchObserver | None = None) -> None:
        for name, value in (("max_batch_tokens", max_batch_tokens), ("max_batch_size", max_batch_size),
                            ("max_queue_tokens", max_queue_tokens)):
            positive_int(name, value)
        if max_wait_s is not None and (not isinstance(max_wait_s, (int, float)) or not max_wait_s > 0):
            raise ValueError(f"max_wait_s must be a positive number or None, got {max_wait_s!r}")
        self.max_wait_s = max_wait_s
        self.model = model
        self.dim = dim
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self.max_queue_tokens = max_queue_tokens
        self.observer = observer
        self._cond = threading.Condition()
        self._jobs: deque[Job] = deque()  # jobs with inputs still waiting, in round-robin order
        self._queue_tokens = 0
        self._queue_inputs = 0
        self._running_tokens = 0  # tokens of the batch the model is running now
        self._closing = False
        self._tokens_per_s = 0.0  # served tokens per second while busy (moving average): admission, Retry-After
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> DynamicBatcher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="e5kit-batcher", daemon=True)
            self._thread.start()
        return self

    def close(self, *, drain: bool = True, timeout: float | None = None) -> None:
        """Stop taking work; finish what is queued (drain) or cancel it; wait for the worker."""
        with self._cond:
            self._closing = True
            if not drain:
                for job in list(self._jobs):
                    self._drop(job)
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def queue_tokens(self) -> int:
        return self._queue_tokens

    @property
    def queue_inputs(self) -> int:
        return self._queue_inputs

    @property
    def tokens_per_second(self) -> float:
        return self._tokens_per_s

    # -- client side --------------------------------------------------------------------------
    def submit(self, ids: Sequence[Sequence[int]], *, normalize: bool = True) -> Job:
        """Queue one request's token-id lists; its `future` gives a float32 (n, dim) array in input order."""
        if not ids or any(len(x) == 0 for x in ids):
            raise ValueError("submit needs a non-empty list of non-empty token-id lists")
        job = Job(ids, normalize, self.dim)
        with self._cond:
            self.check_capacity(job.tokens)
            self._jobs.append(job)
            self._queue_tokens += job.tokens
            self._queue_inputs += len(job.pending)
            self._cond.notify()
        return job

    def check_capacity(self, tokens: int = 0) -> None:
        """Raise QueueFullError (or ShuttingDownError) if `tokens` more could not be queued now.

        With tokens=0 it is a cheap early check: the server sheds a request before tokenizing it
        when the queue is already over its limits.
        """
        if self._closing:
            raise ShuttingDownError("the server is shutting down")
        if self._queue_tokens + tokens > self.max_queue_tokens:
            raise QueueFullError(f"queue full: {self._queue_tokens} tokens waiting, request has {tokens}, "
                                 f"limit {self.max_queue_tokens}", self.retry_after())
        ahead = self._queue_tokens + self._running_tokens
        wait = (ahead + tokens) / self._tokens_per_s if self._tokens_per_s else 0.0
        if self.max_wait_s and self._queue_tokens and wait > self.max_wait_s:
            raise QueueFullError(f"queue full: about {wait:.1f} s of work waiting with this request, limit "
                                 f"{self.max_wait_s:g} s", self.retry_after())

    def cancel(self, job: Job) -> int:
        """Drop a job's waiting inputs (client gone); returns how many left the queue."""
        with self._cond:
            dropped = len(job.pending)
            self._drop(job)
        return dropped

    def retry_after(self) -> float:
        """Seconds until what waits now has run at the recent speed, within [1, 60]."""
        rate = self._tokens_per_s or 1000.0
        return float(min(60.0, max(1.0, (self._queue_tokens + self._running_tokens) / rate)))

    def _drop(self, job: Job, error: BaseException | None = None) -> None:  # lock held
        job.cancelled = True
        if job.pending:
            self._queue_tokens -= sum(length for length, _ in job.pending)
            self._queue_inputs -= len(job.pending)
            job.pending.clear()
        if job in self._jobs:
            self._jobs.remove(job)
        if error is None:
            job.future.cancel()
        elif not job.future.done():
            job.future.set_exception(error)

    # -- worker side --------------------------------------------------------------------------
    def _take_batch(self) -> list[tuple[Job, int]]:
        """Next batch (lock held, jobs waiting): one input from every job, then first come first served."""
        order = list(self._jobs)  # arrival order
        length, index = order[0].pending.pop()  # the oldest job's longest input sets the width
        batch, state = [(order[0], index)], {"width": length, "taken": length}

        def take_one(job: Job) -> bool:
            """Add the job's longest input that fits the width, else its shortest if the budget allows."""
            if not job.pending or len(batch) >= self.max_batch_size:
                return False
            k = bisect.bisect_right(job.pending, (state["width"], len(job.ids)))
            pos, width = (k - 1, state["width"]) if k > 0 else (0, job.pending[0][0])
            if (len(batch) + 1) * width > self.max_batch_tokens:
                return False
            length, index = job.pending.pop(pos)
            batch.append((job, index))
            state["width"], state["taken"] = width, state["taken"] + length
            return True

        for job in order[1:]:  # every waiting job moves forward in every batch: none starves
            take_one(job)
        for job in order:  # then the oldest requests finish first, which keeps mean latency low
            while take_one(job):
                pass
        for job in order:
            if not job.pending:
                self._jobs.remove(job)
        self._queue_tokens -= state["taken"]
        self._queue_inputs -= len(batch)
        self._running_tokens = state["taken"]
        return batch

    def _run(self) -> None:
        import torch

        from e5kit.encode.memory import trim_heap
        from e5kit.model.pooling import l2_normalize

        name_native_thread("e5kit-batcher")
        busy_since: float | None = None  # end of the previous batch, if work was waiting then
        while True:
            with self._cond:
                while not self._jobs and not self._closing:
                    self._cond.wait()
                if not self._jobs:
                    return
                batch = self._take_batch()
            ids = [job.ids[i] for job, i in batch]
            start = time.perf_counter()
            period_start = busy_since if busy_since is not None else start
            try:
                raw = self.model.embed_token_ids(ids, normalize=False)  # (B, dim) float32
                unit = l2_normalize(torch.from_numpy(raw)).numpy()
            except Exception as exc:  # the model failed: fail these jobs, keep serving others
                log.exception("batch of %d inputs failed", len(batch))
                self._fail({job for job, _ in batch}, exc)
                continue
            seconds = time.perf_counter() - start
            tokens = sum(len(x) for x in ids)
            self._finish(batch, raw, unit)
            if getattr(self.model, "device_type", "cpu") != "cuda" and not self._jobs:
                # Only when no work waits: back-to-back batches reuse the freed activations (a trim would make
                # every layer page-fault them in again); idle moments give the fragmented heap back.
                trim_heap()
            # speed as the queue sees it: model time plus the gaps between back-to-back batches
            end = time.perf_counter()
            rate = tokens / (end - period_start) if end > period_start else 0.0
            self._tokens_per_s = rate if not self._tokens_per_s else 0.8 * self._tokens_per_s + 0.2 * rate
            busy_since = end if self._jobs else None
            if self.observer is not None:
                self.observer.observe_batch(inputs=len(batch), tokens=tokens,
                                            padded_tokens=len(ids) * max(len(x) for x in ids), seconds=seconds)

    def _finish(self, batch: list[tuple[Job, int]], raw: np.ndarray, unit: np.ndarray) -> None:
        done: list[Job] = []
        with self._cond:
            self._running_tokens = 0
            for row, (job, index) in enumerate(batch):
                if job.cancelled:
                    continue
                job.out[index] = unit[row] if job.normalize else raw[row]
                job.remaining -= 1
                if job.remaining == 0:
                    done.append(job)
        for job in done:
            if job.future.set_running_or_notify_cancel():
                job.future.set_result(job.out)

    def _fail(self, jobs: set[Job], exc: BaseException) -> None:
        with self._cond:
            self._running_tokens = 0
            for job in jobs:
                self._drop(job, exc)
