"""Prompt (prefix) policy as data: which prefix each role gets for a given checkpoint.

E5 models were trained with "query: " and "passage: " on every input and do worse without them
(shared/docs/e5.md). Checkpoints on the hub do not store these prompts, so the family is recognised
by name. A checkpoint whose sentence-transformers config stores prompts is trusted as is; any other
checkpoint gets no prefix, as its authors evaluate it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from e5kit.io.records import join_title

E5_PROMPTS: dict[str, str] = {"query": "query: ", "passage": "passage: "}
STANDARD_ROLES = ("query", "passage", "none")
ROLE_ALIASES = {"passage": ("passage", "document", "doc")}

# (pattern on the model name, prompts). First match wins. Names are hub ids or folder names.
KNOWN_FAMILIES: tuple[tuple[str, Mapping[str, str]], ...] = (
    (r"(^|[/_-])(multilingual-)?e5-(small|base|large)(-v2)?(-unsupervised)?(-instruct)?$", E5_PROMPTS),
)


@dataclass(frozen=True)
class PromptPolicy:
    """The prompts in force for a model and where they came from (for results and `E5.prompts`)."""

    prompts: Mapping[str, str] = field(default_factory=dict)
    source: str = "none"  # "checkpoint", "family:<pattern>", "user" or "none"

    def prefix_for(self, role: str | None) -> str:
        """Prefix for a role ("query", "passage", ...); "" for None or a role the policy lacks.

        "passage" also finds a prompt stored as "document" or "doc" (sentence-transformers' names).
        """
        if role is None or role == "none":
            return ""
        for name in ROLE_ALIASES.get(role, (role,)):
            if name in self.prompts:
                return self.prompts[name]
        return ""

    def knows(self, role: str) -> bool:
        """Whether `role` is a standard role or a prompt this policy stores."""
        return role in STANDARD_ROLES or role in self.prompts

    def add(self, text: str, prefix: str) -> str:
        """`prefix` + text, unless the text already starts with it or with any other of this model's prompts."""
        return add_prefix(text, prefix, also=self.prompts.values())

    def record(self, roles: Mapping[str, str]) -> dict[str, object]:
        """What each named input gets, for results: {"inputs": {name: {"role", "prefix"}}, "source"}."""
        inputs = {name: {"role": role, "prefix": self.prefix_for(role)} for name, role in roles.items()}
        return {"inputs": inputs, "source": self.source}


def policy_for(
    name: str,
    stored_prompts: Mapping[str, str] | None,
    override: Mapping[str, str] | None = None,
) -> PromptPolicy:
    """Choose the prompt policy: user override, then prompts stored in the checkpoint, then family."""
    if override is not None:
        return PromptPolicy(dict(override), "user")
    stored = {k: v for k, v in (stored_prompts or {}).items() if v}  # empty prompts mean "no prefix"
    if stored:
        return PromptPolicy(stored, "checkpoint")
    base = name.rstrip("/").lower()
    for pattern, prompts in KNOWN_FAMILIES:
        if re.search(pattern, base):
            return PromptPolicy(dict(prompts), f"family:{pattern}")
    return PromptPolicy({}, "none")


def add_prefix(text: str, prefix: str, also: Iterable[str] = ()) -> str:
    """Prepend `prefix` unless the text already starts with it or with one of the prompts in `also`.

    A prefix is never doubled, and a text the caller already marked with another role's prompt
    ("passage: X" sent as a query) keeps its own: the caller said what it is.
    """
    if not prefix or text.startswith(prefix) or any(p and text.startswith(p) for p in also):
        return text
    return prefix + text


def passage_text(item: object, index: int) -> str:
    """A passage as one string: a str as is, a {"title", "text"} mapping joined by `join_title`."""
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        if "text" not in item:
            raise TypeError(f"passage at index {index} is a mapping without a 'text' key (keys: {sorted(item)})")
        text, title = item["text"], item.get("title") or ""
        if not isinstance(text, str) or not isinstance(title, str):
            raise TypeError(f"passage at index {index}: 'title' and 'text' must be str")
        return join_title(title, text)
    raise TypeError(f"passage at index {index} is {type(item).__name__}; expected str or {{'title', 'text'}} dict")
