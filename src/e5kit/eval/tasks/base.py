"""What every task returns, and the checks tasks share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TaskOutput:
    """Scores of one task run: the main metric's name, every metric, and the data counts used."""

    main_score: str
    scores: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def main_value(self) -> float:
        return float(self.scores[self.main_score])


def require_dense(model: Any, task_type: str) -> None:
    if getattr(model, "kind", None) != "dense":
        raise ValueError(f"{task_type} needs an embedding model; {getattr(model, 'name', model)!r} can only "
                         "do retrieval")
