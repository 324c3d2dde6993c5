"""Tokenization once per input, with truncation counted (never silent)."""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def check_text(text: str, where: str | None = None) -> str:
    """`text` if it is valid Unicode (encodable as UTF-8), else ValueError naming `where` (if given).

    JSON and Python strings may carry a lone surrogate ("\\ud800"), which no tokenizer can read; the
    tokenizer's own error names neither the item nor the character.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        lead = f"{where}: contains" if where else "contains"
        raise ValueError(f"{lead} a lone surrogate {text[exc.start]!r} at character {exc.start}, "
                         "which is not valid Unicode text (encode the text as UTF-8 before sending it)") from None
    return text


@dataclass
class TokenizedTexts:
    """Token ids per text (special tokens included, truncated to the limit) and how many were cut."""

    ids: list[list[int]]
    truncated: int
    full_lengths: list[int] | None = None  # lengths before truncation, where known

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

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    @functools.cached_property
    def _untruncated(self) -> Any:
        backend = copy.deepcopy(self.hf.backend_tokenizer)
        backend.no_padding()
        backend.no_truncation()
        return backend

    @functools.cached_property
    def template(self) -> tuple[list[int], list[int]]:
        """Special ids before and after the content, read off the tokenizer's own template."""
        bare = self._untruncated.encode("a", add_special_tokens=False).ids
        full = self._untruncated.encode("a", add_special_tokens=True).ids
        if len(bare) != 1 or bare[0] not in full:
            return [], []
        pos = full.index(bare[0])
        return full[:pos], full[pos + 1:]

    def full_lengths(self, texts: Sequence[str]) -> list[int]:
        """Token counts without truncation (special tokens included): how far over the limit a text is."""
        return [len(e.ids) for e in self._untruncated.encode_batch(list(texts), add_special_tokens=True)]

    def frame_ids(self, arrays: Sequence[Sequence[int]], prefix: str, also: Sequence[str] = ()) -> TokenizedTexts:
        """Content ids framed as text would be: prefix ids (unless they, or those of a prompt in `also`,
        are there already: the rule of `add_prefix`), special tokens, truncation.

        Ids outside the vocabulary raise ValueError naming the input. `full_lengths` of the result
        holds each input's length before truncation.
        """
        head, tail = self.template
        pre = self._untruncated.encode(prefix, add_special_tokens=False).ids if prefix else []
        marks = [m for m in (self._untruncated.encode(p, add_special_tokens=False).ids for p in {prefix, *also} if p)
                 if m]
        room = self.max_length - len(head) - len(tail)
        out, full, cut = [], [], 0
        for i, arr in enumerate(arrays):
            bad = next((t for t in arr if not 0 <= t < self.vocab_size), None)
            if bad is not None:
                raise ValueError(f"input[{i}] has token id {bad}, outside this model's vocabulary "
                                 f"[0, {self.vocab_size})")
            content = list(arr)
            if pre and not any(content[: len(m)] == m for m in marks):
                content = pre + content
            full.append(len(content) + len(head) + len(tail))
            if len(content) > room:
                content, cut = content[:room], cut + 1
            out.append(head + content + tail)
        return TokenizedTexts(out, cut, full)

    def __call__(self, texts: Sequence[str]) -> TokenizedTexts:
        encodings = self._backend.encode_batch(list(texts), add_special_tokens=True)
        ids = [e.ids for e in encodings]
        truncated = sum(1 for e in encodings if e.overflowing)
        return TokenizedTexts(ids, truncated)
