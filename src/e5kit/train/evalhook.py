"""Periodic evaluation during training: a callable from a checkpoint folder to {task: main score}.

The trainer only knows the `EvalHook` shape (Path -> dict[str, float]); `hook_for_tasks` builds one
that loads the checkpoint with E5 and runs e5kit's evaluator on the named tasks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

EvalHook = Callable[[Path], dict[str, float]]


def hook_for_tasks(tasks: Sequence[str], *, data_dir: str | os.PathLike[str] | None = None) -> EvalHook | None:
    """An EvalHook running e5kit.eval on `tasks`, or None when no task is named."""
    if not tasks:
        return None
    names = list(tasks)

    def run_eval(folder: Path) -> dict[str, float]:
        from e5kit import E5
        from e5kit.eval import evaluate_tasks  # the evaluator's entry point (issue 3)

        model = E5(str(folder))
        return {name: float(score) for name, score in evaluate_tasks(model, names, data_dir=data_dir).items()}

    return run_eval
