"""Classification by logistic regression on embeddings, as mteb 2.x (AbsTaskClassification).

For each of `n_experiments`: draw `samples_per_label` training texts per label (mteb's draw: the
same index list is shuffled again by a fresh RandomState(seed) each experiment, then the first
examples of each label are kept), fit LogisticRegression(max_iter=100, random_state=seed), and
score the whole test split. Scores are means over experiments; per-experiment scores are kept.
Texts get the query prompt (embeddings as features). Same seed -> same numbers.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from e5kit.eval.metrics.classification import classification_scores, mean_scores
from e5kit.eval.tasks.base import TaskOutput, require_dense
from e5kit.options import positive_int

MAIN_SCORE = "accuracy"


def undersample(labels: list[Any], samples_per_label: int, n_experiments: int, seed: int) -> list[list[int]]:
    """Training indices of each experiment (mteb's sequence of draws)."""
    idxs = list(range(len(labels)))
    draws = []
    for _ in range(n_experiments):
        np.random.RandomState(seed).shuffle(idxs)
        counter: dict[Any, int] = defaultdict(int)
        chosen = []
        for i in idxs:
            if counter[labels[i]] < samples_per_label:
                chosen.append(i)
                counter[labels[i]] += 1
        draws.append(chosen)
    return draws


def evaluate(model: Any, train: tuple[list[str], list[Any]], test: tuple[list[str], list[Any]], *,
             samples_per_label: int = 8, n_experiments: int = 10, seed: int = 42, max_iter: int = 100
             ) -> TaskOutput:
    from sklearn.linear_model import LogisticRegression

    require_dense(model, "classification")
    for name, value in (("samples_per_label", samples_per_label), ("n_experiments", n_experiments),
                        ("max_iter", max_iter)):
        positive_int(name, value)
    (train_x, train_y), (test_x, test_y) = train, test
    if len(set(train_y)) < 2:
        raise ValueError(f"classification needs 2+ labels in the training split, got {sorted(set(train_y))}")
    draws = undersample(list(train_y), samples_per_label, n_experiments, seed)
    union = sorted(set().union(*draws))
    pos = {j: i for i, j in enumerate(union)}
    train_emb = model.encode([train_x[j] for j in union], "query")
    test_emb = model.encode(list(test_x), "query")
    runs = []
    for chosen in draws:
        clf = LogisticRegression(max_iter=max_iter, random_state=seed)
        clf.fit(train_emb[[pos[j] for j in chosen]], [train_y[j] for j in chosen])
        runs.append(classification_scores(list(test_y), clf.predict(test_emb).tolist()))
    scores: dict[str, Any] = mean_scores(runs)
    scores["scores_per_experiment"] = runs
    counts = {"train": len(train_x), "train_used": len(union), "test": len(test_x), "labels": len(set(train_y)),
              "samples_per_label": samples_per_label, "n_experiments": n_experiments, "seed": seed}
    return TaskOutput(MAIN_SCORE, scores, counts)
