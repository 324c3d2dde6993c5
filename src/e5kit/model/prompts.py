"""THE prompt policy: which prefix each role gets for a given checkpoint (docs/models.md).

Every caller (E5, the server, eval, index, train, bench) asks this module; nothing else computes a prefix.
By family, recognised by name because hub checkpoints store no prompts:
- e5, e5-v2, e5-unsupervised, multilingual-e5: "query: " and "passage: " (symmetric tasks and features: "query: ");
- the instruct models (multilingual-e5-large-instruct, e5-mistral-7b-instruct): a query is
  "Instruct: {instruction}\nQuery: {text}" and a document gets no prefix, as their model cards show. Without
  an instruction the documented default (`DEFAULT_INSTRUCTION`, the cards' web-search example) is used, and
  said once in the log.
Prompts stored in a checkpoint's sentence-transformers config override the family (a stored prompt of the
instruct form makes the model an instruct one); a checkpoint with none and an unknown name gets no prefix.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e5kit.io.records import join_title

log = logging.getLogger("e5kit")

E5_PROMPTS: dict[str, str] = {"query": "query: ", "passage": "passage: "}
STANDARD_ROLES = ("query", "passage", "none")
ROLE_ALIASES = {"passage": ("passage", "document", "doc")}

# The instruct models' query format (multilingual-e5-large-instruct and e5-mistral-7b-instruct model cards).
INSTRUCT_TEMPLATE = "Instruct: {instruction}\nQuery: "
INSTRUCT_FORM = re.compile(r"Instruct: (?P<instruction>.*?)(?P<tail>\nQuery: ?)", re.S)
# Used when an instruct model gets no instruction: the example task of both instruct model cards.
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"

_E5 = r"(multilingual-)?e5-(small|base|large)(-v2)?(-unsupervised)?"
# (name, pattern on the model name, family kind). First match wins. Names are hub ids or folder names.
KNOWN_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("e5-instruct", r"(^|[/_-])((multilingual-)?e5-(small|base|large)|e5-mistral-7b)-instruct$", "instruct"),
    ("e5", rf"(^|[/_-]){_E5}$", "e5"),
)

_said: set[tuple[str, str]] = set()  # (source, instruction) pairs whose default use was logged


def instruct_prompt(instruction: str) -> str:
    """The query prefix of an instruct model for `instruction` ("Instruct: ...\nQuery: ")."""
    return INSTRUCT_TEMPLATE.format(instruction=instruction)


def _check_instruction(instruction: object) -> str:
    if not isinstance(instruction, str):
        raise TypeError(f"instruction must be a str, got {type(instruction).__name__}")
    if not instruction.strip():
        raise ValueError("instruction must be a non-empty str (a one-sentence task description)")
    return instruction.strip()


@dataclass(frozen=True)
class PromptPolicy:
    """The prompts in force for a model and where they came from (for results and `E5.prompts`).

    `prompts` maps role or prompt name to prefix. An instruct policy (`instruct=True`) formats the query
    role as "Instruct: {instruction}\nQuery: " with the caller's instruction, or `default_instruction`.
    """

    prompts: Mapping[str, str] = field(default_factory=dict)
    source: str = "none"  # "checkpoint", "family:<name>", "user" or "none"
    instruct: bool = False
    default_instruction: str | None = None

    def prefix_for(self, role: str | None, instruction: str | None = None) -> str:
        """Prefix for a role ("query", "passage", a stored prompt name); "" for None, "none" or a role the
        policy lacks. "passage" also finds a prompt stored as "document" or "doc" (sentence-transformers' names).

        `instruction` is for the query role of an instruct model; anywhere else it is a ValueError, never
        silently dropped.
        """
        if instruction is not None:
            instruction = _check_instruction(instruction)
            if not self.instruct:
                raise ValueError(f"instruction given, but this model has no instruct prompts (prompts: "
                                 f"{dict(self.prompts) or 'none'}, from {self.source}); only instruct models such "
                                 f"as multilingual-e5-large-instruct take one")
            if role != "query":
                raise ValueError(f"instruction is for the query role (documents of instruct models get no "
                                 f"instruction), got role {role!r}")
            return instruct_prompt(instruction)
        if role is None or role == "none":
            return ""
        if role == "query" and self.instruct:
            default = self.default_instruction or DEFAULT_INSTRUCTION
            if (self.source, default) not in _said:
                _said.add((self.source, default))
                log.warning("instruct model (%s): no instruction given, queries use the default %r "
                         "(pass instruction=... / --instruction)", self.source, default)
            return self.prompts.get("query") or instruct_prompt(default)
        for name in ROLE_ALIASES.get(role, (role,)):
            if name in self.prompts:
                return self.prompts[name]
        return ""

    def knows(self, role: str) -> bool:
        """Whether `role` is a standard role or a prompt this policy stores."""
        return role in STANDARD_ROLES or role in self.prompts

    @property
    def roles(self) -> tuple[str, ...]:
        """Every role or prompt name a caller may ask for, sorted."""
        return tuple(sorted({*STANDARD_ROLES, *self.prompts}))

    def marks(self) -> tuple[str, ...]:
        """This model's own prompts (non-empty): a text starting with one is not given another."""
        return tuple(p for p in dict.fromkeys(self.prompts.values()) if p)

    def marked(self, text: str) -> bool:
        """Whether `text` already starts with one of this model's prompts (for an instruct model: with any
        "Instruct: ...\nQuery: " instruction)."""
        if any(text.startswith(p) for p in self.marks()):
            return True
        return self.instruct and INSTRUCT_FORM.match(text) is not None

    def add(self, text: str, prefix: str) -> str:
        """`prefix` + text, unless the text already starts with it or with any other of this model's prompts."""
        if self.marked(text):
            return text
        return add_prefix(text, prefix)

    def record(self, roles: Mapping[str, str], instruction: str | None = None) -> dict[str, object]:
        """What each named input gets, for results: {"inputs": {name: {"role", "prefix"}}, "source", and for an
        instruct model "instruction"} (`instruction` applies to the query role, as in `prefix_for`)."""
        inputs = {name: {"role": role, "prefix": self.prefix_for(role, instruction if role == "query" else None)}
                  for name, role in roles.items()}
        out: dict[str, object] = {"inputs": inputs, "source": self.source}
        if self.instruct:
            out["instruction"] = instruction or self.default_instruction or DEFAULT_INSTRUCTION
        return out


def _family(name: str) -> tuple[str, str] | None:
    """(family name, kind) of a model name, or None when no family pattern matches."""
    base = name.rstrip("/").lower()
    for family, pattern, kind in KNOWN_FAMILIES:
        if re.search(pattern, base):
            return family, kind
    return None


def _from_prompts(prompts: Mapping[str, str], source: str, instruct_family: bool) -> PromptPolicy:
    """A policy from explicit prompts (stored or user): instruct when a prompt has the instruct form, or when
    the family is instruct and no query prompt is given (then the family's query format still applies)."""
    forms = {k: INSTRUCT_FORM.fullmatch(v) for k, v in prompts.items()}
    query_form = forms.get("query")
    instruct = any(forms.values()) or (instruct_family and "query" not in prompts)
    default = query_form.group("instruction") if query_form else None
    return PromptPolicy(dict(prompts), source, instruct=instruct, default_instruction=default)


def policy_for(
    name: str,
    stored_prompts: Mapping[str, str] | None,
    override: Mapping[str, str] | None = None,
) -> PromptPolicy:
    """Choose the prompt policy: user override, then prompts stored in the checkpoint, then family."""
    family = _family(name)
    instruct_family = family is not None and family[1] == "instruct"
    if override is not None:
        return _from_prompts(dict(override), "user", instruct_family)
    stored = {k: v for k, v in (stored_prompts or {}).items() if v}  # empty prompts mean "no prefix"
    if stored:
        return _from_prompts(stored, "checkpoint", instruct_family)
    if family is None:
        return PromptPolicy({}, "none")
    if instruct_family:
        # the query prompt with the default instruction, so that a saved checkpoint's sentence-transformers
        # config reproduces it; documents: an explicit empty prompt (none, as the cards show)
        prompts = {"query": instruct_prompt(DEFAULT_INSTRUCTION), "passage": ""}
        return PromptPolicy(prompts, f"family:{family[0]}", instruct=True, default_instruction=DEFAULT_INSTRUCTION)
    return PromptPolicy(dict(E5_PROMPTS), f"family:{family[0]}")


def family_name(checkpoint_name: str, config: Mapping[str, Any] | None = None) -> str:
    """The name the family patterns match: a hub id as given, a local folder's own name when it names a
    family, else the config's origin (`_name_or_path`, which a fine-tuned copy keeps)."""
    name = str(checkpoint_name).rstrip("/")
    if not Path(name).expanduser().is_dir():
        return name
    folder = Path(name).expanduser().resolve().name
    origin = str((config or {}).get("_name_or_path") or "")
    return folder if _family(folder) is not None or not origin else origin


def checkpoint_policy(checkpoint: Any, override: Mapping[str, str] | None = None) -> PromptPolicy:
    """The policy of a resolved `Checkpoint` (name, config, stored prompts) and an optional user override."""
    return policy_for(family_name(checkpoint.name, checkpoint.config), checkpoint.stored_prompts, override)


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
