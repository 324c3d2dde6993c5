"""The task types e5kit evaluates, declared once: each is a module here with
`evaluate(model, dataset, **options) -> TaskOutput`, and the prompt role of each of its inputs.

Roles follow the E5 model card: retrieval is asymmetric (queries "query", documents "passage");
symmetric tasks (STS, pair classification) and embeddings used as features (classification,
clustering) give every input the query role. Which prefix a role gets is the model's prompt policy
(e5kit.model.prompts). A new task type is one module here plus one row below.
"""

from __future__ import annotations

import importlib
from typing import Any

# task type -> input name -> prompt role
TASK_TYPES: dict[str, dict[str, str]] = {
    "retrieval": {"query": "query", "document": "passage"},
    "sts": {"sentence": "query"},
    "classification": {"text": "query"},
    "clustering": {"text": "query"},
    "pair_classification": {"sentence": "query"},
}


def check_task_type(task_type: str) -> str:
    if task_type not in TASK_TYPES:
        raise ValueError(f"unknown task type {task_type!r}; choose one of {', '.join(TASK_TYPES)}")
    return task_type


def task_roles(task_type: str) -> dict[str, str]:
    """Input name -> prompt role for a task type."""
    return TASK_TYPES[check_task_type(task_type)]


def task_module(task_type: str) -> Any:
    """The module that evaluates `task_type` (imported on first use)."""
    return importlib.import_module(f"e5kit.eval.tasks.{check_task_type(task_type)}")
