"""Clustering by MiniBatchKMeans on embeddings, scored by V-measure (mteb 2.x legacy clustering).

k = number of gold labels, batch 500, n_init "auto". mteb runs one k-means with seed 42 per
cluster set; here one set is clustered with `n_seeds` seeds (42, 43, ...) and the mean and std of
the V-measures are reported (n_seeds=1 gives mteb's number). Texts get the query prompt.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from e5kit.eval.tasks.base import TaskOutput, require_dense
from e5kit.options import positive_int

MAIN_SCORE = "v_measure"


def cluster_v_measures(embeddings: np.ndarray, labels: list[Any], seeds: list[int], batch_size: int = 500
                       ) -> list[float]:
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.metrics import v_measure_score

    k = len(set(labels))
    out = []
    for seed in seeds:
        km = MiniBatchKMeans(n_clusters=k, batch_size=batch_size, n_init="auto", compute_labels=True,
                             random_state=seed)
        km.fit(embeddings)
        out.append(float(v_measure_score(labels, km.labels_)))
    return out


def evaluate(model: Any, data: tuple[list[str], list[Any]], *, n_seeds: int = 10, seed: int = 42,
             batch_size: int = 500) -> TaskOutput:
    require_dense(model, "clustering")
    positive_int("n_seeds", n_seeds)
    texts, labels = data
    if len(set(labels)) < 2 or len(texts) < len(set(labels)):
        raise ValueError(f"clustering needs 2+ labels and at least as many texts; got {len(texts)} texts, "
                         f"{len(set(labels))} labels")
    emb = model.encode(list(texts), "query")
    seeds = [seed + i for i in range(n_seeds)]
    values = cluster_v_measures(emb, list(labels), seeds, batch_size)
    scores = {"v_measure": float(np.mean(values)), "v_measure_std": float(np.std(values)),
              "v_measures": values, "seeds": seeds}
    return TaskOutput(MAIN_SCORE, scores, {"texts": len(texts), "labels": len(set(labels))})
