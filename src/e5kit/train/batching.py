"""Batches without twins: a contrastive batch never holds the same query or the same passage twice.

Every passage of a batch is a negative for every other query, so a passage that occurs twice (two
judgements of one document, a query asked twice with two answers, a hard negative that is another pair's
positive) is scored as a negative of its own twin: a false negative. `DistinctBatches` wraps the pair stream
and defers a pair that would make a twin to a later batch (it is tried first there); when more than
`max_deferred` pairs wait, the oldest is dropped, as is a pair whose own positive is among its negatives.
Both are counted. Texts are compared in the form used for
exact matching (`data.pairs.normalize_text`: case, punctuation and spacing ignored).
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict
from typing import Any

from e5kit.data.pairs import Pair, normalize_text
from e5kit.errors import InputFormatError


class DistinctBatches:
    """`take(n)`: n pairs with distinct queries and distinct passages (positives and the k hard negatives used).

    `stream` is a train.data.PairStream (anything with next/state/load_state/bad). The state (the stream's,
    the deferred pairs and the counts) goes into checkpoints, so a resumed run takes the same batches.
    """

    def __init__(self, stream: Any, *, hard_negatives: int = 0, max_deferred: int = 0) -> None:
        self.stream = stream
        self.k = hard_negatives
        self.max_deferred = max_deferred
        self.deferred: deque[Pair] = deque()
        self.counts = {"deferred": 0, "dropped": 0}

    @property
    def bad(self) -> Any:
        return self.stream.bad

    def _texts(self, pair: Pair) -> tuple[str, list[str]]:
        negs = pair.negatives or []
        used = [negs[j % len(negs)] for j in range(self.k)] if negs else []
        return normalize_text(pair.query), [normalize_text(t) for t in (pair.passage, *used)]

    def take(self, n: int) -> list[Pair]:
        """The next n pairs without twins; deferred pairs of earlier batches come first."""
        cap = self.max_deferred or max(4 * n, 1024)
        queries: set[str] = set()
        passages: set[str] = set()
        batch: list[Pair] = []
        waiting, self.deferred = self.deferred, deque()
        misses = 0
        while len(batch) < n:
            pair = waiting.popleft() if waiting else self.stream.next()
            q, texts = self._texts(pair)
            if texts[0] in texts[1:]:  # its own positive among its negatives: a twin in any batch
                self.counts["dropped"] += 1
                continue
            if q in queries or any(t in passages for t in texts):
                self.deferred.append(pair)
                self.counts["deferred"] += 1
                if len(self.deferred) > cap:
                    self.deferred.popleft()
                    self.counts["dropped"] += 1
                misses += 1
                if misses > 100 * n + cap:
                    raise InputFormatError(f"could not fill a batch of {n} pairs with distinct queries and passages "
                                           f"after {misses} draws: the data has too few distinct pairs for this "
                                           "batch_size")
                continue
            batch.append(pair)
            queries.add(q)
            passages.update(texts)
        self.deferred.extendleft(reversed(waiting))  # not tried this time: first in line next time
        return batch

    def state(self) -> dict[str, Any]:
        return {"stream": self.stream.state(), "deferred": [asdict(p) for p in self.deferred],
                "counts": dict(self.counts)}

    def load_state(self, state: dict[str, Any]) -> None:
        if "stream" not in state:  # a checkpoint written before batches were made distinct
            self.stream.load_state(state)
            return
        self.stream.load_state(state["stream"])
        self.deferred = deque(Pair(**p) for p in state["deferred"])
        self.counts = {**self.counts, **state["counts"]}
