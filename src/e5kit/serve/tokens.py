"""From request inputs (texts or token-id arrays) to the token ids the model runs, with limits checked.

Text goes through the model's own tokenizer (`E5.engine.tokenizer`) after the prefix is added with
`add_prefix`, so the ids are exactly those `E5.encode_*` uses. Token-id arrays are taken as this
model's vocabulary without special tokens: the prefix's ids go in front (unless already there) and
the tokenizer's special-token template goes around them, which gives the same ids as the text.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from e5kit.errors import E5kitError
from e5kit.model.prompts import add_prefix


class InputTooLongError(E5kitError):
    """An input is over the model's token limit and truncation is off (HTTP 413)."""


class BadInputError(E5kitError, ValueError):
    """An input value the schema cannot catch (token id out of range, unknown prompt) (HTTP 422)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class Prepared:
    """Token ids per input (special tokens included), their real-token total and how many were cut."""

    ids: list[list[int]]
    tokens: int
    truncated: int


class RequestTokenizer:
    """Turns validated request inputs into model token ids for one loaded `E5`."""

    def __init__(self, model: Any) -> None:
        self.prompts: dict[str, str] = model.prompts
        self.tokenizer = model.engine.tokenizer  # TextTokenizer: truncating, counts overflow
        self.max_length: int = self.tokenizer.max_length
        backend = copy.deepcopy(self.tokenizer.hf.backend_tokenizer)
        backend.no_padding()
        backend.no_truncation()
        self._full = backend  # counts the true length of over-long inputs for the 413 message
        self.vocab_size = len(self.tokenizer.hf)
        self._head, self._tail = self._template(backend)

    @staticmethod
    def _template(backend: Any) -> tuple[list[int], list[int]]:
        """Special ids before and after the content, read off the tokenizer's own template."""
        bare = backend.encode("a", add_special_tokens=False).ids
        full = backend.encode("a", add_special_tokens=True).ids
        if len(bare) != 1 or bare[0] not in full:
            return [], []
        pos = full.index(bare[0])
        return full[:pos], full[pos + 1:]

    @property
    def roles(self) -> tuple[str, ...]:
        """Role names a request may give: the model's prompts (query/passage when it has none) and "none"."""
        return tuple(sorted({*(self.prompts or ("query", "passage")), "none"}))

    def prefix(self, role: str | None, param: str) -> str:
        """The prefix for a role ("query", "passage", a stored prompt name, or "none")."""
        if role is None or role == "none":
            return ""
        if role in self.prompts:
            return self.prompts[role]
        if not self.prompts and role in ("query", "passage"):
            return ""  # a model without prompts takes both roles as is
        raise BadInputError(f"{param} {role!r} is not one of {list(self.roles)}", param)

    def texts(self, texts: Sequence[str], *, prefix: str, truncate: bool) -> Prepared:
        """Tokenize texts with the prefix; over-long inputs are cut (truncate) or refused with their counts."""
        tokenized = self.tokenizer([add_prefix(t, prefix) for t in texts])
        if tokenized.truncated and not truncate:
            at_limit = [i for i, x in enumerate(tokenized.ids) if len(x) >= self.max_length]
            full = self._full.encode_batch([add_prefix(texts[i], prefix) for i in at_limit], add_special_tokens=True)
            over = [(i, len(e.ids)) for i, e in zip(at_limit, full, strict=True) if len(e.ids) > self.max_length]
            self._refuse(over)
        return Prepared(tokenized.ids, sum(tokenized.lengths), tokenized.truncated)

    def token_ids(self, arrays: Sequence[Sequence[int]], *, prefix: str, truncate: bool) -> Prepared:
        """Wrap token-id arrays with the prefix ids and special tokens; same limits as for text."""
        pre = self._full.encode(prefix, add_special_tokens=False).ids if prefix else []
        room = self.max_length - len(self._head) - len(self._tail)
        out, over, cut = [], [], 0
        for i, arr in enumerate(arrays):
            bad = next((t for t in arr if not 0 <= t < self.vocab_size), None)
            if bad is not None:
                raise BadInputError(f"input[{i}] has token id {bad}, outside this model's vocabulary "
                                    f"[0, {self.vocab_size})", "input")
            content = list(arr) if not pre or list(arr[: len(pre)]) == pre else pre + list(arr)
            if len(content) > room:
                if not truncate:
                    over.append((i, len(content) + len(self._head) + len(self._tail)))
                    continue
                content, cut = content[:room], cut + 1
            out.append(self._head + content + self._tail)
        self._refuse(over)
        return Prepared(out, sum(len(x) for x in out), cut)

    def _refuse(self, over: list[tuple[int, int]]) -> None:
        if not over:
            return
        shown = ", ".join(f"input[{i}] has {n}" for i, n in over[:5]) + (" ..." if len(over) > 5 else "")
        raise InputTooLongError(f"{len(over)} input(s) over the model's limit of {self.max_length} tokens "
                                f"({shown}); send truncate=true to cut them")
