"""An E5 model inside mteb 2.x: implements mteb's EncoderProtocol so `mteb.evaluate(adapter, tasks)` runs.

mteb hands `encode` a DataLoader of batches ({"text": [...], ...}; documents already joined as
title + " " + text) plus the task's metadata and a prompt type. The prefix follows the model's prompt
policy (e5kit.model.prompts): documents get the passage prompt, everything else (queries, and inputs of
symmetric and feature tasks, which mteb sends without a prompt type) the query prompt; models
without prompts get none. Instruct models' queries get the task's instruction: `instruction=` if given,
else the registered task's (eval/registry.py TASK_INSTRUCTIONS, matched by mteb name), else the model's
default. Encoding goes through E5's own token-budget batching, not mteb's.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def _texts(inputs: Any) -> list[str]:
    """All texts of an mteb DataLoader (or any iterable of {"text": [...]} batches), in order."""
    texts: list[str] = []
    for batch in inputs:
        if not isinstance(batch, dict) or "text" not in batch:
            raise TypeError(f"expected batches with a 'text' column, got {type(batch).__name__}")
        texts.extend(str(t) for t in batch["text"])
    return texts


class MtebE5:
    """Wrap an `E5` (or load one from a path/hub id) for mteb.

    `name` and `revision` go into mteb's ModelMeta (and so into its result paths); by default
    the model's name and its revision or weights fingerprint.
    """

    def __init__(self, model: Any, revision: str | None = None, *, device: str | None = None,
                 name: str | None = None, show_progress: bool | None = False, instruction: str | None = None,
                 **kwargs: Any) -> None:
        if isinstance(model, (str, os.PathLike)):
            from e5kit import E5

            model = E5(model, device=device, **kwargs)
        if not hasattr(model, "encode") or not hasattr(model, "prompts"):
            raise TypeError(f"model must be an e5kit.E5 or a checkpoint path/hub id, got {type(model).__name__}")
        self.model = model
        if instruction is not None:
            model.policy.prefix_for("query", instruction)  # refused now for a model without instruct prompts
        self.instruction = instruction
        self.show_progress = show_progress
        self._name = name or str(model.name)
        self._revision = revision or model.revision or model.fingerprint[:12]

    # -- mteb's EncoderProtocol ----------------------------------------------------------------
    def role_for(self, prompt_type: Any) -> str:
        """'passage' for mteb's document prompt type, else 'query' (E5's rule for every other input)."""
        value = getattr(prompt_type, "value", prompt_type)
        return "passage" if value in ("document", "passage") else "query"

    def instruction_for(self, task_metadata: Any) -> str | None:
        """The instruction an instruct model's queries get for an mteb task; None for other models."""
        if not self.model.policy.instruct:
            return None
        if self.instruction is not None:
            return self.instruction
        from e5kit.eval.registry import REGISTRY, TASK_INSTRUCTIONS

        task = getattr(task_metadata, "name", None)
        return next((TASK_INSTRUCTIONS.get(s.name) for s in REGISTRY.values()
                    if task and (s.mteb_name or "").split(" (")[0] == task), None)

    def encode(self, inputs: Any, *, task_metadata: Any = None, hf_split: str | None = None,
               hf_subset: str | None = None, prompt_type: Any = None, **kwargs: Any) -> np.ndarray:
        """(n, dim) float32 L2-normalized embeddings of every text the DataLoader yields."""
        role = self.role_for(prompt_type)
        instruction = self.instruction_for(task_metadata) if role == "query" else None
        prefix = self.model.policy.prefix_for(role, instruction)
        return self.model.encode(_texts(inputs), prefix=prefix, show_progress=self.show_progress)

    def similarity(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """Cosine similarity matrix (n1, n2)."""
        return self.model.similarity(np.asarray(embeddings1), np.asarray(embeddings2))

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """Cosine similarity of each row pair (n,)."""
        a = np.atleast_2d(np.asarray(embeddings1, dtype=np.float32))
        b = np.atleast_2d(np.asarray(embeddings2, dtype=np.float32))
        if a.shape != b.shape:
            raise ValueError(f"pairwise similarity needs equal shapes, got {a.shape} and {b.shape}")
        an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return np.sum(an * bn, axis=1)

    @property
    def mteb_model_meta(self) -> Any:
        from mteb.models.model_meta import ModelMeta

        m = self.model
        return ModelMeta(
            loader=None, name=self._name, revision=self._revision, release_date=None, languages=["eng-Latn"],
            n_parameters=None, memory_usage_mb=None, max_tokens=m.max_seq_length, embed_dim=m.dim, license=None,
            open_weights=True, public_training_code=None, public_training_data=None, framework=["PyTorch"],
            similarity_fn_name="cosine", use_instructions=bool(m.policy.instruct), training_datasets=None,
        )
