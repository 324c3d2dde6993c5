"""Run tasks for one model and write one JSON result per task; reuse results already written.

A result records everything needed to trust and reproduce its number: scores, dataset and split,
counts, the prefix policy, model name/revision/fingerprint, precision, library versions, wall
time and encode tokens/s.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from e5kit.eval.models import (
    BM25Model,
    DenseModel,
    is_local_model,
    load_eval_model,
    model_slug,
    result_key,
    task_prompts,
)
from e5kit.eval.registry import DatasetSpec, get_dataset
from e5kit.eval.tasks import task_module
from e5kit.io.atomic import atomic_write_json, check_writable
from e5kit.options import with_options

log = logging.getLogger("e5kit")
RESULT_FORMAT = 1


def versions() -> dict[str, str | None]:
    import importlib.metadata as md

    from e5kit import __version__

    out: dict[str, str | None] = {"e5kit": __version__}
    for pkg in ("torch", "transformers", "scikit-learn", "pytrec-eval-terrier", "bm25s", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def result_path(output: str | os.PathLike[str], key: str, task: str) -> Path:
    """OUTPUT/<result key>/<task>.json (the key from `models.result_key`: unique per checkpoint)."""
    return Path(output) / key / f"{task}.json"


def run_task(model: DenseModel | BM25Model, spec: DatasetSpec, *, slug: str | None = None) -> dict[str, Any]:
    """Evaluate one dataset; the returned dict is the JSON result (`slug`, the result key, names the model in
    reports; by default `result_key` of the model's name and fingerprint)."""
    from e5kit.encode.engine import EncodeStats

    start, cpu_start = time.perf_counter(), time.process_time()
    inputs = spec.load()
    model.stats = EncodeStats()
    if isinstance(model, DenseModel):
        model.instruction = spec.instruction
    if spec.task_type != "retrieval" and model.kind != "dense":
        raise ValueError(f"{spec.name} is a {spec.task_type} task; {model.name!r} can only do retrieval")
    output = task_module(spec.task_type).evaluate(model, **inputs, **spec.options)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    stats = model.stats
    meta = model.meta()
    return {
        "e5kit_result": RESULT_FORMAT,
        "task": spec.name, "task_type": spec.task_type,
        "dataset": {"name": spec.name, "path": spec.path, "train_path": spec.train_path, "split": spec.split,
                    "mteb_name": spec.mteb_name, "note": spec.note},
        "model": meta, "model_slug": slug or result_key(model.name, meta.get("fingerprint")),
        "precision": meta.get("precision"), "prefix_policy": model.policy(spec.task_type),
        "instruction": spec.instruction,
        "options": spec.options,
        "main_score": output.main_score, "main_score_value": output.main_value, "scores": output.scores,
        "counts": output.counts,
        "encode": {"texts": stats.texts, "tokens": stats.tokens, "padded_tokens": stats.padded_tokens,
                   "truncated": stats.truncated, "batches": stats.batches, "seconds": round(stats.seconds, 3),
                   "tokens_per_second": round(stats.tokens_per_second, 1)},
        "wall_seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),  # CPU time tells load from speed
        "versions": versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


@dataclass(frozen=True)
class EvalSettings:
    """Where results go and how the model runs; see `evaluate`."""

    output: str | os.PathLike[str] = "results"
    data_dir: str | os.PathLike[str] | None = None  # default: $E5KIT_DATA or ../shared/data
    overwrite: bool = False  # recompute even when a matching result is stored
    device: str | None = None
    precision: str | None = None
    batch_tokens: int | None = None
    show_progress: bool | None = None
    ignore_identical_ids: bool | None = None  # when not None, set on every retrieval task
    instruction: str | None = None  # instruct models' task description for every task (default: TASK_INSTRUCTIONS)


def evaluate(model: str, tasks: Sequence[str], *, settings: EvalSettings | None = None,
             on_result: Callable[[dict[str, Any], bool], None] | None = None, **options: Any) -> list[dict[str, Any]]:
    """Evaluate `model` ("bm25", a checkpoint folder or hub id) on `tasks`; one JSON per task.

    `settings` (or its fields as keyword `options`, e.g. output="results") say where and how. A task whose
    result file exists is read back instead of run, unless `overwrite`. The model is loaded only if some task
    needs running. `on_result(result, reused)` is called after each task.
    """
    s = with_options(EvalSettings, settings, options)
    output, data_dir, overwrite, device, precision = s.output, s.data_dir, s.overwrite, s.device, s.precision
    batch_tokens, show_progress, ignore_identical_ids = s.batch_tokens, s.show_progress, s.ignore_identical_ids
    if isinstance(tasks, str) or not tasks:
        raise ValueError("tasks must be a non-empty list of dataset names")
    specs = [get_dataset(t, data_dir) for t in tasks]  # fail on a bad name before any work
    _check_before_work(specs, output)
    current = _ReuseCheck(model, precision, device)
    if s.instruction is not None:
        current.check_instruction(s.instruction)  # a clear error before any work, not a silently ignored option
        specs = [replace(spec, instruction=s.instruction.strip()) for spec in specs]
    if ignore_identical_ids is not None:  # a per-run override for every retrieval task
        specs = [replace(s, options={**s.options, "ignore_identical_ids": ignore_identical_ids})
                 if s.task_type == "retrieval" else s for s in specs]
    loaded: DenseModel | BM25Model | None = None
    results = []
    for i, spec in enumerate(specs, start=1):
        path = result_path(output, current.key, spec.name)
        result = None if overwrite else _reusable(path, spec, current)
        reused = result is not None
        if reused:
            log.info("[%d/%d] %s: reusing %s", i, len(specs), spec.name, path)
        else:
            if loaded is None:
                loaded = load_eval_model(model, device=device, precision=precision, batch_tokens=batch_tokens,
                                         show_progress=show_progress)
            log.info("[%d/%d] %s (%s) ...", i, len(specs), spec.name, spec.task_type)
            result = run_task(loaded, spec, slug=current.key)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, result)
            log.info("[%d/%d] %s: %s = %.4f in %.1fs -> %s", i, len(specs), spec.name, result["main_score"],
                     result["main_score_value"], result["wall_seconds"], path)
        results.append(result)
        if on_result is not None:
            on_result(result, reused)
    return results


def _check_before_work(specs: Sequence[DatasetSpec], output: str | os.PathLike[str]) -> None:
    """Every dataset's files exist and results can be written: found now, not after a model load and hours."""
    for spec in specs:
        for path in (spec.path, spec.train_path):
            if path is not None and not Path(path).exists():
                raise FileNotFoundError(f"dataset {spec.name!r}: {path} not found")
    check_writable(Path(output) / "<model>" / "<task>.json")


class _ReuseCheck:
    """What a stored result must match to be reused: the weights on disk now, and the precision asked for."""

    def __init__(self, model: str, precision: str | None, device: str | None) -> None:
        self.model, self.precision, self.device = model, precision, device
        self._fingerprint: str | None = None
        self._checkpoint: Any = None

    @property
    def checkpoint(self) -> Any:
        """The resolved checkpoint (config and stored prompts, no weights read); None for BM25."""
        if self._checkpoint is None and model_slug(self.model) != "bm25":
            from e5kit.model.checkpoint import read_checkpoint

            self._checkpoint = read_checkpoint(self.model)
        return self._checkpoint

    def prompts(self, spec: DatasetSpec) -> dict[str, object] | None:
        """The prompt record this run gives `spec`'s inputs (model/prompts.py, as E5 would); None for BM25."""
        if self.checkpoint is None:
            return None
        from e5kit.model.prompts import checkpoint_policy

        return task_prompts(checkpoint_policy(self.checkpoint), spec.task_type, spec.instruction)

    def check_instruction(self, instruction: str) -> None:
        """An instruction asked for must be usable: a non-empty str, for a model with instruct prompts."""
        from e5kit.model.prompts import checkpoint_policy

        if self.checkpoint is None:
            raise ValueError("--instruction is for instruct models; BM25 takes no prompts")
        checkpoint_policy(self.checkpoint).prefix_for("query", instruction)

    @property
    def key(self) -> str:
        """Where this model's results live (a local folder's key carries its weights' short fingerprint)."""
        return result_key(self.model, self.fingerprint if is_local_model(self.model) else None)

    @property
    def fingerprint(self) -> str | None:
        """The checkpoint's weights fingerprint (None for BM25); hashed once, without loading the model."""
        if self._fingerprint is None and self.checkpoint is not None:
            self._fingerprint = self.checkpoint.fingerprint()
        return self._fingerprint

    def concrete_precision(self) -> str:
        """The mode this run computes in (None -> the default fp32, 'auto' -> this hardware's pick)."""
        from e5kit.encode.precision import resolve_device, resolve_precision

        return resolve_precision(self.precision, resolve_device(self.device))


def _reusable(path: Path, spec: DatasetSpec, current: _ReuseCheck) -> dict[str, Any] | None:
    """The stored result at `path` when it still describes this model and task, else None (and why, logged).

    A folder retrained in place, another precision, or changed task options make a stored score
    wrong for this run, so it is recomputed rather than silently reported.
    """
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
        stored = result["model"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: stored result %s is unreadable (%s); recomputing", spec.name, path, exc)
        return None
    reason = None
    if result.get("options", {}) != spec.options:
        reason = f"task options changed ({result.get('options')} -> {spec.options})"
    elif current.fingerprint is not None and stored.get("fingerprint") != current.fingerprint:
        reason = "the checkpoint's weights changed since it was written"
    elif current.fingerprint is not None and result.get("precision") != (want := current.concrete_precision()):
        reason = f"it was computed in {result.get('precision')}, this run asks for {want}"
    elif (prompts := current.prompts(spec)) is not None and (result.get("prefix_policy") or {}).get("inputs") != \
            prompts["inputs"]:
        reason = f"its prompts differ from this run's ({prompts['inputs']})"
    if reason:
        log.warning("%s: not reusing %s: %s; recomputing", spec.name, path, reason)
        return None
    return result
