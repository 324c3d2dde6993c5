"""From request inputs (texts or token-id arrays) to the token ids the model runs, with limits checked.

Text goes through `E5.tokenize`, which applies the model's prompt policy, so the ids are exactly those
`E5.encode_*` uses. Token-id arrays go through `E5.tokenize_ids`: this model's vocabulary without
special tokens, framed with the prefix's ids and the special-token template, the same ids as the text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from e5kit.errors import E5kitError


class InputTooLongError(E5kitError):
    """An input is over the model's token limit and truncation is off (HTTP 413)."""


class BadInputError(E5kitError, ValueError):
    """An input value the schema cannot catch (token id out of range, unknown prompt) (HTTP 422)."""

    code = "invalid_value"

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
    """Turns validated request inputs into model token ids for one loaded `E5`, through its public methods."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.max_length: int = model.max_seq_length
        self.vocab_size: int = model.vocab_size

    @property
    def roles(self) -> tuple[str, ...]:
        """Role names a request may give: the model's policy's (query, passage, none, stored prompt names)."""
        return self.model.policy.roles

    def prefix(self, role: str | None, param: str, instruction: str | None = None) -> str:
        """The prefix for a role ("query", "passage", a stored prompt name, or "none") and, for an instruct
        model's queries, an instruction: the model's policy (model/prompts.py) decides, errors become 422s."""
        if role is not None and not self.model.policy.knows(role):
            raise BadInputError(f"{param} {role!r} is not one of {list(self.roles)}", param)
        try:
            return self.model.policy.prefix_for(role, instruction)
        except (TypeError, ValueError) as exc:
            raise BadInputError(str(exc), "instruction") from None

    def texts(self, texts: Sequence[str], *, prefix: str, truncate: bool, keep_end: bool = False) -> Prepared:
        """Tokenize texts with the prefix; over-long inputs are cut (truncate) or refused with their counts.

        A cut keeps the start of the text, or with `keep_end` its end (TEI's truncation_direction
        "left"): the prefix and then the last whole words that fit.
        """
        tokenized = self.model.tokenize(texts, prefix=prefix)
        if not tokenized.truncated:
            return Prepared(tokenized.ids, sum(tokenized.lengths), 0)
        at_limit = [i for i, x in enumerate(tokenized.ids) if len(x) >= self.max_length]
        full = self.model.count_tokens([texts[i] for i in at_limit], prefix=prefix, truncate=False)
        over = [(i, n) for i, n in zip(at_limit, full, strict=True) if n > self.max_length]
        if not truncate:
            self._refuse(over)
        if keep_end and over:
            ends = [self._end_that_fits(texts[i], prefix) for i, _ in over]
            for (i, _), ids in zip(over, self.model.tokenize(ends, prefix=prefix).ids, strict=True):
                tokenized.ids[i] = ids
        return Prepared(tokenized.ids, sum(len(x) for x in tokenized.ids), tokenized.truncated)

    def _end_that_fits(self, text: str, prefix: str) -> str:
        """The longest tail of `text` that starts at a word and fits the limit with the prefix.

        E5 exposes only start-keeping truncation, so the tail is found by bisecting over word starts
        (WordPiece and SentencePiece tokenize words independently, so a tail's tokens are the end of
        the text's). A last word longer than the limit on its own is returned whole, to be cut as usual.
        """
        starts = [m.start() for m in re.finditer(r"\S+", text)]
        lo, hi = 0, len(starts) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self.model.count_tokens([text[starts[mid]:]], prefix=prefix, truncate=False)[0] <= self.max_length:
                hi = mid
            else:
                lo = mid + 1
        return text[starts[lo]:] if starts else text

    def token_ids(self, arrays: Sequence[Sequence[int]], *, prefix: str, truncate: bool) -> Prepared:
        """Frame token-id arrays with the prefix ids and special tokens; same limits as for text."""
        try:
            framed = self.model.tokenize_ids(arrays, prefix=prefix)
        except ValueError as exc:
            raise BadInputError(str(exc), "input") from None
        if framed.truncated and not truncate:
            self._refuse([(i, n) for i, n in enumerate(framed.full_lengths or []) if n > self.max_length])
        return Prepared(framed.ids, sum(framed.lengths), framed.truncated)

    def _refuse(self, over: list[tuple[int, int]]) -> None:
        if not over:
            return
        shown = ", ".join(f"input[{i}] has {n}" for i, n in over[:5]) + (" ..." if len(over) > 5 else "")
        raise InputTooLongError(f"{len(over)} input(s) over the model's limit of {self.max_length} tokens "
                                f"({shown}); send truncate=true to cut them")
