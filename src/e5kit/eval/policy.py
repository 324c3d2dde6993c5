"""Which prompt role each input of each task type gets, and the record of it written into results.

As the E5 model card says: retrieval is asymmetric (queries "query: ", documents "passage: ");
symmetric tasks (STS, pair classification) and embeddings used as features (classification,
clustering) put the query prompt on every input. A model without prompts gets no prefix at all.
"""

from __future__ import annotations

from collections.abc import Mapping

TASK_TYPES = ("retrieval", "sts", "classification", "clustering", "pair_classification")

# task type -> input name -> prompt role
TASK_ROLES: dict[str, dict[str, str]] = {
    "retrieval": {"query": "query", "document": "passage"},
    "sts": {"sentence": "query"},
    "pair_classification": {"sentence": "query"},
    "classification": {"text": "query"},
    "clustering": {"text": "query"},
}

# Prompt names other libraries use for the same role (sentence-transformers configs often say "document").
ROLE_ALIASES: dict[str, tuple[str, ...]] = {"query": ("query",), "passage": ("passage", "document")}


def check_task_type(task_type: str) -> str:
    if task_type not in TASK_ROLES:
        raise ValueError(f"unknown task type {task_type!r}; choose one of {', '.join(TASK_TYPES)}")
    return task_type


def prefix_for_role(prompts: Mapping[str, str], role: str) -> str:
    """The model's prefix for a role ("" for a model without one)."""
    for name in ROLE_ALIASES.get(role, (role,)):
        if name in prompts:
            return prompts[name]
    return ""


def prefix_policy(task_type: str, prompts: Mapping[str, str], source: str) -> dict[str, object]:
    """What each input of a task gets, e.g. {"query": {"role": "query", "prefix": "query: "}, ...}."""
    roles = TASK_ROLES[check_task_type(task_type)]
    inputs = {name: {"role": role, "prefix": prefix_for_role(prompts, role)} for name, role in roles.items()}
    return {"inputs": inputs, "source": source}
