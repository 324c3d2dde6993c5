"""One module per task type; each has `evaluate(model, dataset, **options) -> TaskOutput`."""

from __future__ import annotations

import importlib
from typing import Any

from e5kit.eval.policy import check_task_type


def task_module(task_type: str) -> Any:
    """The module that evaluates `task_type` (imported on first use)."""
    return importlib.import_module(f"e5kit.eval.tasks.{check_task_type(task_type)}")
