"""`E5`: load a checkpoint once, then embed queries and passages exactly as the model card does."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from e5kit.encode.batching import TokenBudgetBatcher, batch_budget
from e5kit.encode.engine import EncodeEngine, EncodeStats
from e5kit.encode.precision import make_encoder, resolve_device, resolve_precision
from e5kit.model.checkpoint import DEFAULT_MODEL, Checkpoint, read_checkpoint
from e5kit.model.encoder import load_hf_model, load_tokenizer
from e5kit.model.prompts import PromptPolicy, checkpoint_policy, passage_text
from e5kit.model.tokenize import TokenizedTexts, check_text
from e5kit.options import positive_int

log = logging.getLogger("e5kit")

Texts = str | Sequence[str] | Iterable[str]


def _as_texts(texts: Any, what: str = "text") -> list[str]:
    """A list of str from a str, sequence or iterable; non-str items raise TypeError naming the index."""
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, Mapping)) or not isinstance(texts, Iterable):
        raise TypeError(f"expected a str or a list of str, got {type(texts).__name__}")
    items = list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise TypeError(f"{what} at index {i} is {type(t).__name__}, expected str")
        check_text(t, f"{what} at index {i}")
    return items


def _check_bool(name: str, value: Any) -> bool:
    """`value` if it is a bool (numpy's too); anything else, e.g. normalize="no", would read as truthy."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")


def _check_prompts(prompts: Any) -> Mapping[str, str] | None:
    """`prompts` if it is None or a mapping of role name → prefix string; refused at load, not at first encode."""
    if prompts is None:
        return None
    if not isinstance(prompts, Mapping):
        raise TypeError(f"prompts must be a dict of role -> prefix, e.g. {{'query': 'query: '}}, "
                        f"got {type(prompts).__name__}")
    for role, prefix in prompts.items():
        if not isinstance(role, str) or not isinstance(prefix, str):
            raise TypeError(f"prompts must map str roles to str prefixes; {role!r}: {prefix!r} is "
                            f"{type(role).__name__}: {type(prefix).__name__}")
    return prompts


def _attention(encoder: Any) -> str:
    """The attention an encoder runs ('native', 'sdpa', ...); compiled backends (OpenVINO) bring their own."""
    which = getattr(encoder, "attention", None)
    return which() if callable(which) else str(getattr(encoder, "backend", "unknown"))


class E5:
    """An E5-style text encoder: BERT-family model, mean pooling, L2 norm, role prefixes.

    `model` is a local folder (Hugging Face or sentence-transformers layout) or a hub id; the
    default is intfloat/e5-base-unsupervised. `precision` is one of fp32 (exact, default), bf16,
    fp16 (GPU), int8 (CPU, outside the quality budget), ov-fp32 / ov-bf16 / ov-int8 (OpenVINO, CPU),
    auto (fastest inside it); `.precision` is the mode in force. `prompts` overrides the prefix policy,
    e.g. {"query": "query: ", "passage": "passage: "}. `max_tokens_per_batch` bounds batch size x longest
    text (default 4,096 on CPU, 16,384 on GPU: see encode/batching.py).
    BERT-family encoders (E5, multilingual-e5 on XLM-RoBERTa) and Mistral-style decoders (e5-mistral:
    last-token pooling, EOS appended) load; a checkpoint that ships its own code loads only with
    `trust_remote_code=True`.
    """

    def __init__(self, model: str | os.PathLike[str] = DEFAULT_MODEL, *, device: str | None = None,
                 precision: str | None = None, prompts: Mapping[str, str] | None = None,
                 max_seq_length: int | None = None, max_tokens_per_batch: int | None = None,
                 trust_remote_code: bool = False) -> None:
        prompts = _check_prompts(prompts)
        if not isinstance(trust_remote_code, bool):
            raise TypeError(f"trust_remote_code must be True or False, got {type(trust_remote_code).__name__}")
        self.trust_remote_code = trust_remote_code
        self.device = resolve_device(device)
        budget = batch_budget(self.device.type, max_tokens_per_batch)  # checked before anything is loaded
        # the budget asked for (None: the device's default), so a copy on another device (a Ray actor on a GPU
        # for a driver on a CPU) takes its own device's default rather than this one's
        self.batch_tokens_given: int | None = None if max_tokens_per_batch is None else budget
        self.precision = resolve_precision(precision, self.device)
        self.checkpoint: Checkpoint = read_checkpoint(model)
        if max_seq_length is not None:
            if (isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int)
                    or not 2 <= max_seq_length <= self.checkpoint.max_seq_length):
                raise ValueError(
                    f"max_seq_length must be an int in [2, {self.checkpoint.max_seq_length}], got {max_seq_length!r}"
                )
        self.max_seq_length = max_seq_length or self.checkpoint.max_seq_length
        self.policy: PromptPolicy = checkpoint_policy(self.checkpoint, prompts)
        tokenizer = load_tokenizer(self.checkpoint, self.max_seq_length, trust_remote_code=trust_remote_code)
        hf_model = load_hf_model(self.checkpoint, trust_remote_code=trust_remote_code)
        encoder = make_encoder(hf_model, tokenizer, self.checkpoint.pooling, self.device, self.precision)
        self.dim = int(hf_model.config.hidden_size)
        self.engine = EncodeEngine(tokenizer, encoder, TokenBudgetBatcher(max_tokens=budget), self.dim)
        self.last_stats = EncodeStats()

    # -- what the model is --------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.checkpoint.name

    @property
    def prompts(self) -> dict[str, str]:
        """The prefixes in force, by role; empty for models that use none."""
        return dict(self.policy.prompts)

    @property
    def revision(self) -> str | None:
        return self.checkpoint.revision

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over config and weights files: identifies the exact weights in caches and results."""
        return self.checkpoint.fingerprint()

    @property
    def vocab_size(self) -> int:
        return self.engine.tokenizer.vocab_size

    @property
    def device_type(self) -> str:
        return self.device.type

    def info(self) -> dict[str, Any]:
        """Everything a result or a server's /info needs to say which model made an embedding, and what it
        costs: architecture, pooling, dims, backend, parameters and an estimate of memory."""
        from e5kit.model.encoder import memory_estimate

        return {
            "model": self.name, "revision": self.revision, "dim": self.dim, "max_seq_length": self.max_seq_length,
            "precision": self.precision, "device": str(self.device), "prompts": self.prompts,
            "prompt_source": self.policy.source, "pooling": self.checkpoint.pooling,
            "architecture": self.checkpoint.architecture, "model_type": self.checkpoint.model_type,
            "backend": self.engine.encoder.backend, "attention": _attention(self.engine.encoder),
            **memory_estimate(self.engine.encoder, self.engine.batcher.max_tokens),
        }

    def __repr__(self) -> str:
        return f"E5({self.name!r}, device={str(self.device)!r}, precision={self.precision!r}, dim={self.dim})"

    # -- encoding -----------------------------------------------------------------------------
    def _prefix(self, prefix: str | None, prompt_name: str | None, instruction: str | None = None) -> str:
        if prefix is not None and prompt_name is not None:
            raise ValueError("give either prefix= or prompt_name=, not both")
        if instruction is not None and prompt_name != "query":
            raise ValueError("instruction= formats queries: use encode_queries(..., instruction=...) or "
                             f"prompt_name='query' (got prompt_name={prompt_name!r}, prefix={prefix!r})")
        if prompt_name is not None:
            if not isinstance(prompt_name, str) or not self.policy.knows(prompt_name):
                raise ValueError(f"prompt_name {prompt_name!r} is not one of {list(self.policy.roles)}")
            return self.policy.prefix_for(prompt_name, instruction)
        if prefix is not None and not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        return prefix or ""

    def encode(self, texts: Texts, *, prefix: str | None = None, prompt_name: str | None = None,
               instruction: str | None = None, normalize: bool = True,
               show_progress: bool | None = None) -> np.ndarray:
        """Embed texts as given, after adding `prefix` (or the prompt named `prompt_name`; for an instruct
        model's "query" prompt, `instruction` is the task description, docs/models.md).

        Returns float32 (n, dim) in input order; an empty list gives (0, dim). Empty strings are
        valid: they embed as the prefix plus the special tokens, exactly as the reference code does.
        """
        items = _as_texts(texts)
        pre = self._prefix(prefix, prompt_name, instruction)
        normalize = _check_bool("normalize", normalize)
        if show_progress is not None:
            _check_bool("show_progress", show_progress)
        stats = EncodeStats()
        out = self.engine.encode([self.policy.add(t, pre) for t in items], normalize=normalize,
                                 show_progress=show_progress, stats=stats)
        self.last_stats = stats
        return out

    def encode_queries(self, texts: Texts, *, instruction: str | None = None, **kwargs: Any) -> np.ndarray:
        """Embed queries with the model's query prompt ("query: " for E5; "Instruct: {instruction}\\nQuery: "
        for the instruct models, with their documented default when `instruction` is None)."""
        return self.encode(texts, prompt_name="query", instruction=instruction, **kwargs)

    def encode_passages(self, passages: str | Iterable[str | Mapping[str, str]], **kwargs: Any) -> np.ndarray:
        """Embed passages (str, or {"title", "text"} joined as title + " " + text) with the passage prompt."""
        items = [passages] if isinstance(passages, (str, Mapping)) else passages
        if not isinstance(items, Iterable):
            raise TypeError(f"expected passages as a list, got {type(passages).__name__}")
        return self.encode([passage_text(p, i) for i, p in enumerate(items)], prompt_name="passage", **kwargs)

    def iter_encode(self, texts: Iterable[str], *, prefix: str | None = None, prompt_name: str | None = None,
                    instruction: str | None = None, normalize: bool = True, show_progress: bool | None = None,
                    total: int | None = None, chunk_size: int | None = None) -> Iterator[np.ndarray]:
        """Stream (chunk, dim) arrays for a stream of texts too large to hold; memory bounded by chunk_size."""
        pre = self._prefix(prefix, prompt_name, instruction)
        normalize = _check_bool("normalize", normalize)
        if chunk_size is not None:
            positive_int("chunk_size", chunk_size)
        if isinstance(texts, (str, bytes, Mapping)) or not isinstance(texts, Iterable):
            raise TypeError(f"iter_encode takes an iterable of str, got {type(texts).__name__}")
        return self._stream(texts, pre, normalize, show_progress, total, chunk_size)

    def _stream(self, texts: Iterable[str], pre: str, normalize: bool, show_progress: bool | None,
                total: int | None, chunk_size: int | None) -> Iterator[np.ndarray]:
        """The generator behind `iter_encode`, apart so that arguments are checked at the call, not at first use."""

        def prefixed() -> Iterator[str]:
            for i, t in enumerate(texts):
                if not isinstance(t, str):
                    raise TypeError(f"text at index {i} is {type(t).__name__}, expected str")
                yield self.policy.add(check_text(t, f"text at index {i}"), pre)

        kwargs = {"chunk_size": chunk_size} if chunk_size else {}
        self.last_stats = EncodeStats()
        yield from self.engine.iter_encode(prefixed(), normalize=normalize, show_progress=show_progress,
                                           total=total, stats=self.last_stats, **kwargs)

    def count_tokens(self, texts: Texts, *, prefix: str | None = None, prompt_name: str | None = None,
                     instruction: str | None = None, truncate: bool = True) -> list[int]:
        """Tokens per text after prefixing (special tokens included); truncated unless `truncate=False`."""
        pre = self._prefix(prefix, prompt_name, instruction)
        prefixed = [self.policy.add(t, pre) for t in _as_texts(texts)]
        if _check_bool("truncate", truncate):
            return self.engine.tokenizer(prefixed).lengths
        return self.engine.tokenizer.full_lengths(prefixed)

    # -- for callers that batch across requests (the HTTP server) --------------------------------
    def tokenize(self, texts: Texts, *, prefix: str | None = None, prompt_name: str | None = None,
                 instruction: str | None = None) -> TokenizedTexts:
        """Model token ids of texts with the prompt policy applied, truncated to max_seq_length (cuts counted)."""
        pre = self._prefix(prefix, prompt_name, instruction)
        return self.engine.tokenizer([self.policy.add(t, pre) for t in _as_texts(texts)])

    def tokenize_ids(self, arrays: Sequence[Sequence[int]], *, prefix: str | None = None,
                     prompt_name: str | None = None, instruction: str | None = None) -> TokenizedTexts:
        """Token-id arrays in this model's vocabulary (no special tokens) framed as `tokenize` frames text:
        the prefix's ids in front (unless already there), special tokens around, truncated to the limit."""
        return self.engine.tokenizer.frame_ids(arrays, self._prefix(prefix, prompt_name, instruction),
                                               self.policy.marks())

    def embed_token_ids(self, ids: Sequence[Sequence[int]], *, normalize: bool = True) -> np.ndarray:
        """(len(ids), dim) float32 embeddings of one batch of ids from `tokenize`/`tokenize_ids`."""
        return self.engine.encoder.embed(ids, normalize=_check_bool("normalize", normalize)).numpy()

    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine similarity matrix (len(a), len(b)); 1-D inputs are treated as one row."""
        a2, b2 = np.atleast_2d(np.asarray(a, dtype=np.float32)), np.atleast_2d(np.asarray(b, dtype=np.float32))
        if a2.ndim != 2 or b2.ndim != 2 or a2.shape[1] != b2.shape[1]:
            raise ValueError(f"similarity needs (n, d) and (m, d) arrays with equal d, got {a2.shape} and {b2.shape}")
        an = a2 / np.maximum(np.linalg.norm(a2, axis=1, keepdims=True), 1e-12)
        bn = b2 / np.maximum(np.linalg.norm(b2, axis=1, keepdims=True), 1e-12)
        return an @ bn.T

    def save(self, folder: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write Hugging Face + sentence-transformers layout with prompts, loadable by both and by E5.

        Weights are saved in fp32 (re-read from disk when this model runs in a lower precision). A
        non-empty `folder` is refused unless `overwrite`; then only the checkpoint's own files are replaced.
        """
        from e5kit.model.encoder import load_hf_model
        from e5kit.model.save import InferenceSpec, check_target, write_checkpoint

        if not isinstance(folder, (str, os.PathLike)):
            raise TypeError(f"folder must be a str or a path, got {type(folder).__name__}")
        folder = Path(folder)
        check_target(folder, overwrite=_check_bool("overwrite", overwrite))  # before re-reading weights
        model = (self.engine.encoder.model if self.precision == "fp32"
                 else load_hf_model(self.checkpoint, trust_remote_code=self.trust_remote_code))
        spec = InferenceSpec(self.max_seq_length, self.prompts, self.checkpoint.pooling, self.checkpoint.normalize)
        return write_checkpoint(folder, model, self.engine.tokenizer.hf, spec, overwrite=overwrite)
