"""`e5kit pairs filter --engine ray`: the consistency filter's encoder as a pool of E5 actors on Ray (one per GPU,
or per CPU worker). The filter asks for embeddings chunk by chunk (pool passages, then each input chunk's queries
and passages); each chunk is split among the actors, which stay loaded for the whole run (a Ray Data pipeline per
chunk would reload the model every time). Ranking against the pool, resume and the report stay in the filter; the
random pool is drawn from the whole input (or `--pool-from`), never per part."""

from __future__ import annotations

import os
from typing import Any

from e5kit.scale.deps import EngineError, check_address, connect_ray, require
from e5kit.scale.ray_index import RaySettings, pool_size


class _E5Worker:
    """One E5 in a Ray actor."""

    def __init__(self, model: str, device: str, precision: str | None, max_seq_length: int | None) -> None:
        from e5kit.embedder import E5

        self.model = E5(model, device=device, precision=precision, max_seq_length=max_seq_length)

    def fingerprint(self) -> str:
        return self.model.fingerprint

    def encode(self, role: str, texts: list[str]) -> Any:
        fn = self.model.encode_queries if role == "query" else self.model.encode_passages
        return fn(texts, show_progress=False)


class RayPairEncoder:
    """encode_queries / encode_passages (the filter's PairEncoder) over Ray actors, results in input order."""

    def __init__(self, model: str, settings: RaySettings | None = None, *, precision: str | None = None,
                 max_seq_length: int | None = None) -> None:
        s = settings or RaySettings()
        require("ray", "--engine ray")
        check_address(s.address or os.environ.get("RAY_ADDRESS"))
        self._ray = ray = connect_ray(s.address, num_cpus=s.local_cpus)
        workers, gpus = pool_size(ray, s)
        actor = ray.remote(num_gpus=gpus, num_cpus=s.cpus_per_worker)(_E5Worker)
        self.actors = [actor.remote(str(model), "cuda" if gpus else "cpu", precision, max_seq_length)
                       for _ in range(workers)]
        prints = set(ray.get([a.fingerprint.remote() for a in self.actors]))
        if len(prints) != 1:
            raise EngineError(f"the Ray workers loaded different weights for {model!r} ({len(prints)} fingerprints): "
                              "give every node the same model files")
        self.fingerprint = prints.pop()

    def _encode(self, role: str, texts: list[str]) -> Any:
        import numpy as np

        n = len(self.actors)
        bounds = [len(texts) * i // n for i in range(n + 1)]
        refs = [a.encode.remote(role, texts[lo:hi])
                for a, lo, hi in zip(self.actors, bounds[:-1], bounds[1:], strict=True) if hi > lo]
        return np.concatenate(self._ray.get(refs)) if refs else np.zeros((0, 0), np.float32)

    def encode_queries(self, texts: list[str]) -> Any:
        return self._encode("query", list(texts))

    def encode_passages(self, texts: list[str]) -> Any:
        return self._encode("passage", list(texts))
