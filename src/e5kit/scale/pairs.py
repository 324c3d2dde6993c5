"""`e5kit pairs clean` as a datatrove pipeline: dedup that is global across every task and machine.

Five stages, each a datatrove executor (local processes, Slurm job arrays or Ray tasks), each resumable by
completed task (datatrove's `completions/` markers under `OUT/.datatrove/logs/STAGE/`):

1. `rules` (N tasks): e5kit's pair shards are read (task r takes a contiguous block of the input shard files, so
   (task, position) orders pairs as one process would), e5kit's length, decontamination and language checks run
   as datatrove filters; the survivors are kept per task, with their exact-duplicate keys and datatrove MinHash
   signatures (word n-grams of e5kit's normalised passage).
2. `buckets` (one task per MinHash bucket): datatrove finds the signature matches.
3. `clusters` (1 task): datatrove joins matches into clusters (one pair kept per cluster); e5kit finds the exact
   duplicates of the normalised (query, passage) over all tasks (the first one kept).
4. `dedup` (N tasks): each task drops its exact and near duplicates and writes e5kit pair shards with a manifest
   (prefix `pairs`, or `pairs-partRRRofNNN` with several tasks: the names `--shard` parts use).
5. `report` (1 task): the per-task counts become `OUT/report-rules.json` in e5kit's report format.

Which copy of a duplicate survives depends only on the input order, never on N: the same input gives the same
kept pair ids with any number of tasks. Near duplicates differ from the in-process `pairs clean` in two ways:
clusters are transitive (A~B, B~C drops B and C even when A and C are not alike) and bucket matches are not
re-checked against the Jaccard threshold (the banding is chosen so that its threshold is the nearest to it).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from e5kit.data.build import check_options, part_prefix, resolve_inputs
from e5kit.data.filters import (
    RuleConfig,
    enabled_steps,
)
from e5kit.data.resume import differences
from e5kit.data.shards import OutputSettings, list_shards, remove_shards
from e5kit.errors import E5kitError
from e5kit.io.atomic import atomic_write_json
from e5kit.options import positive_int, with_options
from e5kit.scale.deps import check_address, connect_ray, require

EXECUTORS = ("local", "slurm", "ray")
WORK = ".datatrove"


@dataclass(frozen=True)
class PipelineSettings:
    """Where and how wide the datatrove pipeline runs."""

    executor: str = "local"  # local processes, a Slurm job array per stage, or Ray tasks
    tasks: int = 1  # parts of the input (ranks); the output has one shard series per task
    workers: int = 1  # tasks running at once (local, ray); -1: all
    address: str | None = None  # ray: cluster address (else $RAY_ADDRESS, else a local Ray)
    partition: str | None = None  # slurm: partition (required there)
    time: str = "24:00:00"  # slurm: time limit per task
    cpus_per_task: int = 1  # slurm, ray

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        for name in ("tasks", "cpus_per_task"):
            value = getattr(self, name)
            positive_int(name, value)
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers == 0 \
                or self.workers < -1:
            raise ValueError(f"workers must be a positive int or -1 (all tasks at once), got {self.workers!r}")
        if self.executor == "slurm" and not self.partition:
            raise ValueError("the slurm executor needs a partition (--partition)")


def minhash_banding(num_perm: int, threshold: float) -> tuple[int, int]:
    """(buckets, hashes per bucket) with buckets x hashes = num_perm whose LSH threshold (1/b)^(1/r) is the
    nearest to `threshold`."""
    options = [(b, num_perm // b) for b in range(1, num_perm + 1) if num_perm % b == 0]
    return min(options, key=lambda br: (abs((1 / br[0]) ** (1 / br[1]) - threshold), br[0]))


@dataclass
class _Plan:
    """Folders and settings of one run."""

    src: list[str]
    out: Path
    cfg: RuleConfig
    output: OutputSettings
    run: PipelineSettings
    source: str | None = None  # a pair builder (`pairs build SOURCE`) reading its raw inputs; None: pair shards
    source_options: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @property
    def work(self) -> Path:
        return self.out / WORK

    def dir(self, *parts: str) -> str:
        return str(self.work.joinpath(*parts))

    def settings(self) -> dict[str, Any]:
        """What decides the output: a rerun resumes only with the same."""
        return {"inputs": self.files, "source": self.source, "source_options": self.source_options,
                "tasks": self.run.tasks, "config": asdict(self.cfg), "format": self.output.fmt,
                "shard_bytes": self.output.shard_bytes, "max_bad_fraction": self.output.max_bad_fraction}


def _minhash_config(cfg: RuleConfig) -> Any:
    dedup = require("datatrove.pipeline.dedup.minhash", "the datatrove pipeline")
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.text import TextNormConfig

    buckets, per_bucket = minhash_banding(cfg.num_perm, cfg.near_threshold)
    off = TextNormConfig(lowercase=False, norm_whitespace=False, remove_punctuation=False,
                         norm_unicode_diacritics=False, norm_numbers=False)
    return dedup.MinhashConfig(n_grams=max(1, cfg.shingle_words), num_buckets=buckets, hashes_per_bucket=per_bucket,
                               seed=1, norm_config=off, hash_config=HashConfig(precision=64, hash_fc="sha1"))


def _pipelines(plan: _Plan) -> list[tuple[str, list[Any], int]]:
    """(stage, steps, tasks) of every stage this configuration needs, in order."""
    from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupSignature

    from e5kit.scale import steps as s

    cfg, n = plan.cfg, plan.run.tasks
    rules_tally, dedup_tally = s.Tally(cfg.examples_per_reason), s.Tally(cfg.examples_per_reason)
    mh = _minhash_config(cfg) if cfg.near_dedup else None
    bad_dir, max_bad = plan.dir("bad"), plan.output.max_bad_fraction
    rules = [s.PairBuilderReader(plan.source, plan.files, plan.source_options, rules_tally, bad_dir, max_bad)
             if plan.source else s.PairShardReader(plan.files, rules_tally, bad_dir, max_bad)]
    rules += [s.CheckFilter(name, cfg, rules_tally) for name in enabled_steps(cfg)
              if name not in ("exact_dedup", "near_dedup")]
    rules.append(s.KeepFiltered(plan.dir("filtered")))
    if cfg.exact_dedup:
        rules.append(s.ExactKeys(plan.dir("exact", "keys")))
    if mh is not None:
        rules.append(MinhashDedupSignature(plan.dir("minhash", "sigs"), config=mh, language=s.E5kitWords()))
    rules.append(s.TaskReport(plan.dir("reports", "rules"), rules_tally))
    stages: list[tuple[str, list[Any], int]] = [("rules", rules, n)]
    if mh is not None:
        stages.append(("buckets", [MinhashDedupBuckets(plan.dir("minhash", "sigs"), plan.dir("minhash", "buckets"),
                                                       config=mh)], mh.num_buckets))
    cluster: list[Any] = []
    if mh is not None:
        cluster.append(MinhashDedupCluster(plan.dir("minhash", "buckets"), plan.dir("minhash", "remove"), config=mh))
    if cfg.exact_dedup:
        cluster.append(s.ExactFind(plan.dir("exact", "keys"), plan.dir("exact", "remove"), n))
    if cluster:
        stages.append(("clusters", cluster, 1))
    info = {"from": plan.src, "filters": enabled_steps(cfg), "engine": "datatrove", "tasks": n,
            **({"source": plan.source, "source_options": plan.source_options} if plan.source else {})}
    stages.append(("dedup", [
        s.TaskPairsReader(plan.dir("filtered"), dedup_tally),
        s.DedupFilter(plan.dir("exact", "remove") if cfg.exact_dedup else None,
                          plan.dir("minhash", "remove") if mh is not None else None, dedup_tally,
                          cfg.examples_per_reason),
        s.PairShardWriter(str(plan.out), plan.output, dedup_tally, info),
        s.TaskReport(plan.dir("reports", "dedup"), dedup_tally),
    ], n))
    extra = {"name": "datatrove", "executor": plan.run.executor, "tasks": n,
             "minhash": None if mh is None else {"buckets": mh.num_buckets, "hashes_per_bucket": mh.hashes_per_bucket,
                                                 "n_grams": mh.n_grams}}
    stages.append(("report", [s.MergeReports(str(plan.work), str(plan.out), n, cfg, extra)], 1))
    return stages


def _executors(plan: _Plan, stages: list[tuple[str, list[Any], int]]) -> list[Any]:
    """One datatrove executor per stage; on Slurm each depends on the one before (elsewhere they run in turn)."""
    import sys

    run, out, prev = plan.run, [], None
    for name, steps, tasks in stages:
        logs = plan.dir("logs", name)
        workers = tasks if run.workers == -1 else min(run.workers, tasks)
        if run.executor == "local":
            from datatrove.executor import LocalPipelineExecutor

            ex = LocalPipelineExecutor(steps, tasks=tasks, workers=workers, logging_dir=logs)
        elif run.executor == "ray":
            from datatrove.executor.ray import RayPipelineExecutor

            ex = RayPipelineExecutor(steps, tasks=tasks, workers=workers, logging_dir=logs,
                                     cpus_per_task=run.cpus_per_task, mem_per_cpu_gb=0.5)
        else:
            from datatrove.executor.slurm import SlurmPipelineExecutor

            ex = SlurmPipelineExecutor(steps, tasks=tasks, time=run.time, partition=run.partition,
                                       cpus_per_task=run.cpus_per_task, logging_dir=logs, depends=prev,
                                       job_name=f"e5kit-pairs-{name}", venv_path=os.path.join(sys.prefix, "bin",
                                                                                               "activate"))
        out.append(ex)
        prev = ex
    return out


def _prepare(plan: _Plan, resume: bool) -> None:
    """Check the folders and the settings of an earlier run (resume only with the same), or start over."""
    if any(plan.out.resolve() == Path(s).resolve() for s in plan.src):
        raise ValueError(f"output folder {plan.out} must differ from the input folders")
    if plan.source:  # the builder's raw inputs, as `pairs build` resolves them
        check_options(plan.source, plan.source_options)
        plan.files = [str(f) for f in resolve_inputs(plan.source, plan.src, install=False)]
    else:
        plan.files = [str(f) for folder in plan.src for f in list_shards(folder)]
    path = plan.work / "settings.json"
    now = plan.settings()
    if path.exists():
        old = json.loads(path.read_text("utf-8"))
        if not resume:
            for r in range(int(old.get("tasks", 1))):
                remove_shards(plan.out, part_prefix((r, int(old.get("tasks", 1)))))
            shutil.rmtree(plan.work)
        elif diffs := differences(old, now):
            raise E5kitError(f"{plan.out}: an earlier datatrove run there used other settings: {'; '.join(diffs)}; "
                             "rerun with the same settings to resume, pass --no-resume to start over, or use "
                             "another folder")
    plan.work.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, now)


def _failed(plan: _Plan, stages: list[tuple[str, list[Any], int]], executors: list[Any], exc: BaseException) -> str:
    """Which stage and tasks did not finish, with their log files."""
    for (name, _, tasks), ex in zip(stages, executors, strict=True):
        ranks = ex.get_incomplete_ranks(range(tasks), skip_completed=True)
        if ranks:
            logs = ", ".join(plan.dir("logs", name, "logs", f"task_{r:05d}.log") for r in ranks[:4])
            return (f"datatrove stage {name!r}: task(s) {', '.join(map(str, ranks))} of {tasks} did not finish "
                    f"({type(exc).__name__}: {exc}); logs: {logs}{' ...' if len(ranks) > 4 else ''}. Rerun the same "
                    f"command to resume: the {tasks - len(ranks)} completed task(s) are not run again")
    return f"datatrove pipeline failed: {type(exc).__name__}: {exc}"


def _run_in_turn(plan: _Plan, stages: list[tuple[str, list[Any], int]], executors: list[Any]) -> None:
    """Run the stages one after the other, each checked complete: a failed task stops the run with its rank and
    log instead of leaving the next stage waiting for it."""
    for ex, (_, _, tasks) in zip(executors, stages, strict=True):
        try:
            ex.run()
        except Exception as exc:
            raise E5kitError(_failed(plan, stages, executors, exc)) from exc
        if ex.get_incomplete_ranks(range(tasks), skip_completed=True):
            raise E5kitError(_failed(plan, stages, executors, RuntimeError("tasks failed; see their logs")))


def clean_pairs(src: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                cfg: RuleConfig | None = None, *, output: OutputSettings | None = None,
                pipeline: PipelineSettings | None = None, source: str | None = None,
                source_options: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    """Rule-filter and deduplicate the pair shards under `src` into `out` with datatrove; returns the report
    (also `out/report-rules.json`). With `source`, `src` are that pair builder's raw inputs (as for `e5kit
    pairs build SOURCE`, with its `source_options`) and the builder is the pipeline's reader: build, rules,
    dedup and write in one pipeline. Dedup is global over all inputs whatever `pipeline.tasks`; a stopped run
    resumes after its completed tasks when called again with the same settings (`output.resume=False`: start
    over). With the slurm executor the jobs are submitted and the report appears when they finish."""
    require("datatrove", "the datatrove pipeline (--executor)")
    fields = {f for f in OutputSettings.__dataclass_fields__}
    o = with_options(OutputSettings, output, {k: v for k, v in options.items() if k in fields})
    run = with_options(PipelineSettings, pipeline, {k: v for k, v in options.items() if k not in fields})
    if o.part is not None:
        raise ValueError("part (--shard) and the datatrove pipeline exclude each other: datatrove splits the work "
                         "itself (--tasks) and deduplicates across all of it")
    if run.executor == "ray":
        require("ray", "--executor ray")
        check_address(run.address or os.environ.get("RAY_ADDRESS"))
    srcs = [str(src)] if isinstance(src, (str, os.PathLike)) else [str(s) for s in src]
    plan = _Plan(srcs, Path(out), cfg or RuleConfig(), o, run, source, dict(source_options or {}))
    _prepare(plan, o.resume)
    if run.executor == "ray":
        connect_ray(run.address)
    stages = _pipelines(plan)
    executors = _executors(plan, stages)
    if run.executor == "slurm":  # job arrays chained by Slurm dependencies; this call only submits them
        executors[-1].run()
    else:
        _run_in_turn(plan, stages, executors)
    report = Path(out) / "report-rules.json"
    if run.executor == "slurm" and not report.exists():
        return {"submitted": True, "stages": [s[0] for s in stages], "logs": plan.dir("logs")}
    return json.loads(report.read_text("utf-8"))
