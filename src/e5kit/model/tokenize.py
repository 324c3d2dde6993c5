"""Tokenization once per input, with truncation counted (never silent)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class TokenizedTexts:
    """Token ids per text (special tokens included, truncated to the limit) and how many were cut."""

    ids: list[list[int]]
    truncated: int

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]


class TextTokenizer:
    """Wraps a Hugging Face fast tokenizer's Rust backend: same ids as `tokenizer(texts, truncation=True)`.

    The backend is used directly because it tokenizes a batch in parallel and reports which
    encodings overflowed, which is how truncation is counted without tokenizing twice.
    """

    def __init__(self, hf_tokenizer: Any, max_length: int) -> None:
        if not getattr(hf_tokenizer, "is_fast", False):
            raise ValueError("e5kit needs a fast (Rust) tokenizer; the checkpoint only provides a slow one")
        self.hf = hf_tokenizer
        self.max_length = int(max_length)
        self.pad_id = int(hf_tokenizer.pad_token_id if hf_tokenizer.pad_token_id is not None else 0)
        backend = copy.deepcopy(hf_tokenizer.backend_tokenizer)
        backend.no_padding()
        backend.enable_truncation(max_length=self.max_length)
        self._backend = backend

    def __call__(self, texts: Sequence[str]) -> TokenizedTexts:
        encodings = self._backend.encode_batch(list(texts), add_special_tokens=True)
        ids = [e.ids for e in encodings]
        truncated = sum(1 for e in encodings if e.overflowing)
        return TokenizedTexts(ids, truncated)
