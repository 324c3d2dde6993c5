"""Classification metrics as mteb 2.x: accuracy, macro/weighted F1, precision, recall, AP (binary)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def classification_scores(y_true: Sequence[Any], y_pred: Sequence[Any]) -> dict[str, float]:
    """Scores of one prediction run; `ap`/`ap_weighted` only when the test labels are binary."""
    from sklearn import metrics as skm

    if len(y_true) != len(y_pred) or len(y_true) == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and equally long, "
                         f"got {len(y_true)} and {len(y_pred)}")
    out = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "f1": float(skm.f1_score(y_true, y_pred, average="macro")),
        "f1_weighted": float(skm.f1_score(y_true, y_pred, average="weighted")),
        "precision": float(skm.precision_score(y_true, y_pred, average="macro", zero_division=0)),
        "precision_weighted": float(skm.precision_score(y_true, y_pred, average="weighted", zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, average="macro", zero_division=0)),
        "recall_weighted": float(skm.recall_score(y_true, y_pred, average="weighted", zero_division=0)),
    }
    classes = sorted(set(y_true), key=str)
    if len(classes) == 2:  # AP of the hard predictions, positive = the larger label (1 for 0/1 labels)
        pos = classes[1]
        t = np.asarray([y == pos for y in y_true], dtype=int)
        p = np.asarray([y == pos for y in y_pred], dtype=int)
        out["ap"] = float(skm.average_precision_score(t, p, average="macro"))
        out["ap_weighted"] = float(skm.average_precision_score(t, p, average="weighted"))
    return out


def mean_scores(runs: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over experiments (metrics missing from a run are skipped)."""
    if not runs:
        raise ValueError("no experiment scores to average")
    keys = list(dict.fromkeys(k for r in runs for k in r))
    return {k: float(np.mean([r[k] for r in runs if k in r])) for k in keys}
