"""Periodic evaluation during training: a callable from a checkpoint folder to {task: main score}.

The trainer only knows the `EvalHook` shape (Path -> dict[str, float]); `hook_for_tasks` builds one
that loads the checkpoint with E5 and runs e5kit's evaluator (e5kit.eval) on named tasks. Scores are
for watching a run; choosing checkpoints or settings by evaluation sets would make them meaningless.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

EvalHook = Callable[[Path], dict[str, float]]


def hook_for_tasks(tasks: Sequence[str], *, data_dir: str | os.PathLike[str] | None = None,
                   max_seq_length: int | None = None) -> EvalHook | None:
    """An EvalHook running e5kit.eval on `tasks` (registry names, e.g. "scifact"), or None for no tasks."""
    if not tasks:
        return None
    from e5kit.eval.registry import get_dataset

    specs = [get_dataset(t, data_dir) for t in tasks]  # a bad task name fails before training starts

    def run_eval(folder: Path) -> dict[str, float]:
        from e5kit import E5
        from e5kit.eval.models import DenseModel
        from e5kit.eval.runner import run_task

        model = DenseModel(E5(str(folder), max_seq_length=max_seq_length), show_progress=False)
        return {spec.name: float(run_task(model, spec)["main_score_value"]) for spec in specs}

    return run_eval
