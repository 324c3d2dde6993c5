"""Reading request inputs: texts or token-id arrays, every malformed item named by its index.

A JSON union error ("input: must be one of four shapes") does not tell a client which item is wrong,
so the OpenAI `input` field is classified here by hand: a string, a list of strings, one token-id
array or a list of token-id arrays, and anything else is refused with the path of the first bad item
(`input[2]`, `input[1][4]`). Texts must be valid Unicode: JSON may carry a lone surrogate ("\\ud800"),
which no tokenizer can read.
"""

from __future__ import annotations

from dataclasses import dataclass

from e5kit.model.tokenize import check_text

SHAPES = "a string, a list of strings, a list of token ids (ints) or a list of token-id lists"


@dataclass(frozen=True)
class Inputs:
    """Validated inputs: texts, or token-id arrays (`single` when the request held one bare array)."""

    texts: list[str] | None = None
    arrays: list[list[int]] | None = None
    single: bool = False

    @property
    def count(self) -> int:
        return len(self.texts if self.texts is not None else self.arrays or [])


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an int"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _token(value: object, where: str, vocab: int | None, vocab_name: str) -> int:
    if isinstance(value, float) and value.is_integer():  # 47.0 is the integer 47 in JSON
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: {_kind(value)} where a token id (int) was expected")
    if value < 0 or (vocab is not None and value >= vocab):
        bound = f"[0, {vocab})" if vocab is not None else ">= 0"
        raise ValueError(f"{where}: token id {value} is outside {vocab_name} {bound}")
    return value


def _array(value: list, where: str, vocab: int | None, vocab_name: str) -> list[int]:
    if not value:
        raise ValueError(f"{where}: an empty token-id list (send at least one id, or the text \"\")")
    return [_token(t, f"{where}[{j}]", vocab, vocab_name) for j, t in enumerate(value)]


def read_input(value: object, *, field: str = "input", vocab: int | None = None,
               vocab_name: str = "the vocabulary") -> Inputs:
    """Classify and check the OpenAI `input` value; ValueError names the first bad item's path.

    `vocab` bounds token ids (None: only >= 0); `vocab_name` says which vocabulary in messages.
    """
    if isinstance(value, str):
        return Inputs(texts=[check_text(value, field)])
    if not isinstance(value, list):
        raise ValueError(f"{field}: must be {SHAPES}, got {_kind(value)}")
    if not value:
        raise ValueError(f"{field}: an empty list (send at least one text or token id)")
    first = value[0]
    if isinstance(first, str):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ValueError(f"{field}[{i}]: {_kind(item)} in a list of strings ({field}[0] is a string): "
                                 "send all texts or all token ids, not both")
            check_text(item, f"{field}[{i}]")
        return Inputs(texts=list(value))
    if isinstance(first, list):
        arrays = []
        for i, item in enumerate(value):
            if not isinstance(item, list):
                raise ValueError(f"{field}[{i}]: {_kind(item)} in a list of token-id lists ({field}[0] is a "
                                 "list): every item must be a list of ints")
            arrays.append(_array(item, f"{field}[{i}]", vocab, vocab_name))
        return Inputs(arrays=arrays)
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        for i, item in enumerate(value):
            if isinstance(item, (str, list)):
                raise ValueError(f"{field}[{i}]: {_kind(item)} in a list of token ids ({field}[0] is an int): "
                                 "send one token-id list, a list of them, or texts; not a mix")
        return Inputs(arrays=[_array(value, field, vocab, vocab_name)], single=True)
    raise ValueError(f"{field}[0]: {_kind(first)}; {field} must be {SHAPES}")
