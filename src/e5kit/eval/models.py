"""What a task evaluates: a dense encoder (an E5 checkpoint) or BM25, behind one small interface.

Dense models embed texts for a prompt role, through E5's token-budget batching; their encode
statistics (tokens, seconds) are summed per task for tokens/s in results. BM25 can only rank.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from e5kit.encode.engine import EncodeStats
from e5kit.eval.tasks import task_roles

BM25_NAMES = ("bm25",)
GENERIC_NAMES = ("model", "models", "checkpoint", "checkpoints", "final", "best", "last", "latest", "output",
                 "outputs", "snapshot", "snapshots")
STEP_NAME = r"(step|checkpoint|ckpt|epoch)[-_]?\d+"  # trainer checkpoint folders: step-0000002, checkpoint-500
KEY_SEP = "@"  # between a local folder's slug and its short weights fingerprint in a result key
FINGERPRINT_CHARS = 8


class DenseModel:
    """An E5 instance seen by the evaluator: encode by role, record stats, describe itself."""

    kind = "dense"

    def __init__(self, model: Any, *, show_progress: bool | None = None) -> None:
        self.model = model
        self.show_progress = show_progress
        self.stats = EncodeStats()
        self.instruction: str | None = None  # the task's, for an instruct model's queries (set per task)

    @property
    def name(self) -> str:
        return str(self.model.name)

    def _instruction(self, role: str) -> str | None:
        """The task's instruction where the policy uses one (an instruct model's query role), else None."""
        return self.instruction if role == "query" and self.model.policy.instruct else None

    def prefix(self, role: str) -> str:
        """The role's prefix by the model's policy (model/prompts.py), with the task's instruction."""
        return self.model.policy.prefix_for(role, self._instruction(role))

    def policy(self, task_type: str) -> dict[str, object]:
        return task_prompts(self.model.policy, task_type, self.instruction)

    def encode(self, texts: Sequence[str], role: str) -> np.ndarray:
        """(n, dim) float32 L2-normalized embeddings of `texts` with the role's prefix."""
        out = self.model.encode(list(texts), prefix=self.prefix(role), show_progress=self.show_progress)
        self.stats.add(self.model.last_stats)
        return out

    def iter_encode(self, texts: Sequence[str], role: str) -> Iterator[np.ndarray]:
        """Embeddings in row blocks, so a large corpus never sits in memory at once."""
        yield from self.model.iter_encode(iter(texts), prefix=self.prefix(role), show_progress=self.show_progress,
                                          total=len(texts))
        self.stats.add(self.model.last_stats)

    def meta(self) -> dict[str, Any]:
        info = dict(self.model.info())
        info["fingerprint"] = self.model.fingerprint
        return info


def task_prompts(policy: Any, task_type: str, instruction: str | None) -> dict[str, object]:
    """What each input of a task type gets under `policy` (a PromptPolicy) with the task's instruction (used
    only by instruct models): the record results keep, and what a stored result is checked against."""
    return policy.record(task_roles(task_type), instruction if policy.instruct else None)


class BM25Model:
    """BM25 (e5kit.index.bm25) as a retrieval-only "model"; Anserini's k1=0.9, b=0.4 by default."""

    kind = "lexical"
    name = "bm25"

    def __init__(self, *, k1: float = 0.9, b: float = 0.4, show_progress: bool | None = None) -> None:
        self.k1, self.b = k1, b
        self.show_progress = show_progress
        self.stats = EncodeStats()

    def policy(self, task_type: str) -> dict[str, object]:
        return {"inputs": {}, "source": "none (lexical model, no prompts)"}

    def search(self, doc_ids: Sequence[str], doc_texts: Sequence[str], queries: Sequence[str], k: int
               ) -> tuple[np.ndarray, list[list[str]]]:
        from e5kit.index.bm25 import BM25Index

        index = BM25Index.build(doc_ids, doc_texts, k1=self.k1, b=self.b, show_progress=self.show_progress)
        return index.search(queries, k, show_progress=self.show_progress)

    def meta(self) -> dict[str, Any]:
        from e5kit.index.bm25 import DEFAULT_STEMMER

        return {"model": "bm25", "k1": self.k1, "b": self.b, "stemmer": DEFAULT_STEMMER, "stopwords": "lucene-en",
                "library": "bm25s", "revision": None, "fingerprint": None, "precision": None}


def _generic(name: str) -> bool:
    """A folder name that says nothing about which model it is ("model", "checkpoints", "step-0000002")."""
    return name.lower() in GENERIC_NAMES or re.fullmatch(STEP_NAME, name.lower()) is not None


def model_slug(name: str) -> str:
    """A readable file-system name for a model: 'bm25', a hub id with '/' -> '__', or a local folder's name.

    A generic folder name is qualified by the nearest folder above it that is not generic, so
    runs/a/checkpoints/step-0000002 is 'a__step-0000002' and run7/model is 'run7__model'.
    """
    if name.lower() in BM25_NAMES:
        return "bm25"
    path = Path(name).expanduser()
    if not path.exists():
        return name.strip("/").replace("/", "__")
    path = path.resolve()
    if not _generic(path.name):
        return path.name
    run = next((p.name for p in path.parents if p.name and not _generic(p.name)), None)
    return f"{run}__{path.name}" if run else path.name


def is_local_model(name: str) -> bool:
    return name.lower() not in BM25_NAMES and Path(name).expanduser().exists()


def result_key(name: str, fingerprint: str | None) -> str:
    """The folder a model's results are stored under: unique per checkpoint, readable for hub ids and BM25.

    A local folder's key is its readable slug plus the first 8 hex digits of its weights' fingerprint
    ('a__step-0000002@3f9c1a2b'): two runs' same-named checkpoints, or a folder retrained in place, never share
    (or overwrite, or reuse) each other's results. A hub id names one model ('intfloat__e5-base-unsupervised');
    its stored fingerprint is still checked before a result is reused.
    """
    slug = model_slug(name)
    if fingerprint and is_local_model(name):
        return f"{slug}{KEY_SEP}{fingerprint[:FINGERPRINT_CHARS]}"
    return slug


def load_eval_model(name: str, *, device: str | None = None, precision: str | None = None,
                    batch_tokens: int | None = None, show_progress: bool | None = None) -> DenseModel | BM25Model:
    """'bm25' gives BM25Model; anything else is loaded as an E5 checkpoint (folder or hub id)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"model must be a non-empty str (a checkpoint folder, hub id, or 'bm25'), got {name!r}")
    if name.lower() in BM25_NAMES:
        return BM25Model(show_progress=show_progress)
    from e5kit import E5

    kwargs: dict[str, Any] = {} if batch_tokens is None else {"max_tokens_per_batch": batch_tokens}
    return DenseModel(E5(name, device=device, precision=precision, **kwargs), show_progress=show_progress)
