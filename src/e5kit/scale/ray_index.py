"""`e5kit index build --engine ray`: the shards to encode become a Ray dataset (one row per index shard), encoded by
`map_batches` with a pool of E5 actors (one per GPU, or per CPU worker), each using e5kit's own token-budget
batching and precision (`index.build.encode_shard`). The driver plans, hashes and writes the shards exactly as an
in-process build does, so resume, `--shard`, `index merge/check/search` work unchanged.

The driver reads the corpus once (it hashes every shard for resume anyway) and hands the texts of the shards to
encode to Ray's object store (which spills to disk): for a corpus larger than the driver's memory, build it in
slices (`--shard I/N`, each slice a Ray job) and merge.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from e5kit.index.build import EncodeGroups, encode_shard
from e5kit.options import positive_int
from e5kit.scale.deps import EngineError, check_address, connect_ray, require


@dataclass(frozen=True)
class RaySettings:
    """Where and how wide the encoding runs on Ray."""

    address: str | None = None  # a running cluster (else $RAY_ADDRESS, else a local Ray on this machine)
    workers: int | None = None  # E5 actors; default: one per GPU of the cluster, else one per CPU
    gpus_per_worker: float | None = None  # default: 1 when the cluster has GPUs, else 0
    cpus_per_worker: float = 1.0
    local_cpus: int | None = None  # cores a local Ray may use (default: all)

    def __post_init__(self) -> None:
        if self.workers is not None:
            positive_int("workers", self.workers)
        for name in ("gpus_per_worker", "cpus_per_worker"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")


def model_spec(model: Any) -> dict[str, Any]:
    """What an actor needs to load the very model the driver planned with (and to check it did)."""
    return {"model": str(model.name), "precision": model.precision, "max_seq_length": int(model.max_seq_length),
            "prompts": dict(model.prompts) if model.policy.source == "user" else None,
            # the budget the user gave, else None: each actor then takes its own device's default
            "max_tokens_per_batch": getattr(model, "batch_tokens_given", None), "fingerprint": model.fingerprint,
            "passage_prefix": model.policy.prefix_for("passage")}


class E5Actor:
    """One E5 in a Ray actor: a batch of shard rows in, their vectors out."""

    def __init__(self, spec: dict[str, Any], normalize: bool, device: str) -> None:
        from e5kit.embedder import E5

        self.model = E5(spec["model"], device=device, precision=spec["precision"], prompts=spec["prompts"],
                        max_seq_length=spec["max_seq_length"], max_tokens_per_batch=spec["max_tokens_per_batch"])
        got = (self.model.fingerprint, self.model.policy.prefix_for("passage"))
        if got != (spec["fingerprint"], spec["passage_prefix"]):
            raise EngineError(f"the Ray worker loaded {spec['model']!r} with fingerprint/prefix {got}, not the "
                              f"driver's {(spec['fingerprint'], spec['passage_prefix'])}: give every node the same "
                              "model files")
        self.normalize = normalize

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        vectors = [encode_shard(self.model, [str(t) for t in texts], self.normalize) for texts in batch["texts"]]
        out = np.empty(len(vectors), dtype=object)
        out[:] = vectors
        return {"shard": np.asarray(batch["shard"]), "vectors": out}


def pool_size(ray: Any, s: RaySettings) -> tuple[int, float]:
    """(actors, GPUs per actor) from the settings and the cluster's resources."""
    res = ray.cluster_resources()
    gpus = s.gpus_per_worker if s.gpus_per_worker is not None else (1.0 if res.get("GPU", 0) else 0.0)
    workers = s.workers or int(res.get("GPU", 0) // gpus if gpus else max(1, res.get("CPU", 1) // s.cpus_per_worker))
    return max(1, workers), gpus


def ray_encoder(settings: RaySettings | None = None) -> EncodeGroups:
    """An `encode_groups` for `build_index` that encodes the shards on Ray Data (see the module doc). Ray being
    installed and the cluster address answering are checked here, before any work."""
    s = settings or RaySettings()
    require("ray.data", "--engine ray")
    check_address(s.address or os.environ.get("RAY_ADDRESS"))

    def encode(groups: Iterator[Any], model: Any, normalize: bool) -> Iterator[tuple[Any, Any]]:
        ray = connect_ray(s.address, num_cpus=s.local_cpus)
        todo = {g.index: g for g in groups}
        if not todo:
            return
        workers, gpus = pool_size(ray, s)
        ds = ray.data.from_items([{"shard": j, "texts": [r.text for r in g.records]} for j, g in todo.items()],
                                 override_num_blocks=len(todo))
        device = "cuda" if gpus else "cpu"
        out = ds.map_batches(E5Actor, batch_size=1, batch_format="numpy", concurrency=min(workers, len(todo)),
                             num_gpus=gpus, num_cpus=s.cpus_per_worker,
                             fn_constructor_kwargs={"spec": model_spec(model), "normalize": normalize,
                                                    "device": device})
        try:
            for row in out.iter_rows():
                yield todo.pop(int(row["shard"])), row["vectors"]
        except (EngineError, GeneratorExit):
            raise
        except Exception as exc:  # a Ray task or actor failed: its own error, one line
            raise EngineError(f"encoding on Ray failed: {type(exc).__name__}: {str(exc).strip().splitlines()[-1]}") \
                from exc
        if todo:
            raise EngineError(f"Ray returned no vectors for shards {sorted(todo)[:10]}")

    return encode
