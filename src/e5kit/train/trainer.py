"""The training loop: pairs -> tokens -> GradCache step over the (gathered) global batch -> AdamW.

One `Trainer(cfg).run()` call trains, logs, checkpoints and resumes; the CLI (`e5kit train`) and
torchrun both just call it. Every rank reads the same seeded pair stream and takes its own slice of
each global batch, so a run on N processes sees exactly the batches of a run on one.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from e5kit.data.pairs import Pair
from e5kit.data.resume import differences
from e5kit.errors import E5kitError
from e5kit.model.prompts import policy_for
from e5kit.train.batching import DistinctBatches
from e5kit.train.config import ConfigError, TrainConfig, save_config
from e5kit.train.data import PairStream, expand_paths
from e5kit.train.distill import distill_loss, teacher_matrix
from e5kit.train.distributed import DistInfo, gather_with_grad, init_distributed, local_slice, mean_over_ranks
from e5kit.train.evalhook import EvalHook
from e5kit.train.gradcache import GradientCache, TokenBatch, full_batch_backward
from e5kit.train.init import inference_max_length, init_pooling, initial_model, prepare_for_training
from e5kit.train.loss import ContrastiveOutput, info_nce
from e5kit.train.metrics import MetricsLog
from e5kit.train.state import (
    clean_partial,
    describe_run,
    latest,
    load_state,
    new_run_id,
    remove_run,
    rng_state,
    run_id_of,
    save_training_checkpoint,
    set_rng_state,
)

log = logging.getLogger(__name__)

CKPT_DIR = "checkpoints"
# Settings a resumed run may change: its length and how it checkpoints, logs, evaluates and fits in memory.
RESUMABLE_CHANGES = ("output_dir", "steps", "max_minutes", "save_every", "keep_last", "log_every", "eval_every",
                     "eval_tasks", "show_progress", "device", "chunk_size", "gradient_checkpointing")


def pair_texts(pairs: list[Pair], cfg: TrainConfig) -> list[list[str]]:
    """[queries, passages(, hard negatives)] with prefixes; negatives: k per pair, in pair order.

    A pair with fewer than k negatives repeats its own; one with none borrows the next pair's passage.
    """
    # the prompt policy of the model being trained: a text already marked with one of its prompts (an instruct
    # query with any instruction included) keeps its own
    policy = policy_for("", None, {"query": cfg.query_prefix, "passage": cfg.passage_prefix})
    groups = [[policy.add(p.query, cfg.query_prefix) for p in pairs],
              [policy.add(p.passage, cfg.passage_prefix) for p in pairs]]
    k = cfg.hard_negatives
    if k:
        negs = []
        for i, p in enumerate(pairs):
            if not p.negatives and len(pairs) < 2:
                raise ValueError(f"pair {p.id} has no 'negatives' and is alone in its batch: its own passage would "
                                 "be its negative; give every pair negatives or use batch_size >= 2 per process")
            own = p.negatives or [pairs[(i + 1) % len(pairs)].passage]
            negs.extend(own[j % len(own)] for j in range(k))
        groups.append([policy.add(n, cfg.passage_prefix) for n in negs])
    return groups


def tokenize(tokenizer: Any, texts: list[str], max_length: int, device: torch.device) -> TokenBatch:
    enc = tokenizer(texts, max_length=max_length, truncation=True, padding=True, return_tensors="pt",
                    return_token_type_ids=False)
    return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}


def pick_device(cfg: TrainConfig, info: DistInfo) -> torch.device:
    name = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and info.enabled:
        name = f"cuda:{info.local_rank}"
    return torch.device(name)


class Trainer:
    """Runs one configured training; `resume=True` continues from the newest complete checkpoint, and
    `overwrite=True` replaces an earlier run in `output_dir` (without either, a used `output_dir` is refused)."""

    def __init__(self, cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False,
                 eval_hook: EvalHook | None = None) -> None:
        if resume and overwrite:
            raise ConfigError("resume continues the run in output_dir and overwrite replaces it: choose one")
        self.cfg = cfg.validate()
        self.resume, self.overwrite = resume, overwrite
        self.eval_hook = eval_hook
        self.run_dir = Path(cfg.output_dir)
        self.ckpt_root = self.run_dir / CKPT_DIR
        earlier = describe_run(self.run_dir, self.ckpt_root)
        if earlier and not (resume or overwrite):
            raise E5kitError(f"{self.run_dir} holds a training run ({earlier}); pass --resume to continue it or "
                             "--overwrite to replace it (resume=True / overwrite=True in Python), or choose "
                             "another output_dir")
        self.run_id = new_run_id()
        self._check_inputs()
        self._made_run_dir = not self.run_dir.exists()

    def _check_inputs(self) -> None:
        """Refuse, before any folder is made or model loaded, inputs that would fail later: pair shard paths
        that match no file, an init checkpoint that is not there, an output_dir that cannot be written."""
        from e5kit.io.atomic import check_folder_writable
        from e5kit.model.checkpoint import read_checkpoint

        for source in self.cfg.sources:
            expand_paths(source.paths)
        if self.cfg.init:
            read_checkpoint(self.cfg.init)  # config, weights and tokenizer files present; weights not read
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise E5kitError(f"output_dir {self.run_dir} is a file; name a folder")
        check_folder_writable(self.run_dir, self.run_dir)

    def _remove_empty_run_dir(self) -> None:
        """After a failed start, the output folder this run made, if nothing but empty folders is in it."""
        if not self._made_run_dir or not self.run_dir.is_dir():
            return
        if any(p.is_file() for p in self.run_dir.rglob("*")):
            return
        for folder in sorted(self.run_dir.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            folder.rmdir()
        self.run_dir.rmdir()

    # -- set-up -------------------------------------------------------------------------------------
    def _resume_state(self) -> tuple[Path | None, dict[str, Any] | None]:
        """The checkpoint to resume from and its state, refused when it was trained with other settings."""
        folder = latest(self.ckpt_root)
        if folder is None:
            log.warning("--resume: no checkpoint in %s; starting from the beginning", self.ckpt_root)
            return None, None
        state = load_state(folder)
        diffs = differences(state.get("config", {}), self.cfg.to_dict(), ignore=RESUMABLE_CHANGES)
        if diffs:
            raise ConfigError(f"--resume: {folder} was trained with other settings: {'; '.join(diffs)}. Resume with "
                              f"the same settings (only {', '.join(RESUMABLE_CHANGES)} may change), or start a new "
                              "run (another output_dir, or --overwrite)")
        self.run_id = run_id_of(folder) or self.run_id
        return folder, state

    def _prepare_run_dir(self) -> None:
        if self.overwrite:
            removed = remove_run(self.run_dir, self.ckpt_root)
            if removed:
                log.warning("--overwrite: removed the earlier run in %s (%d checkpoints and files)", self.run_dir,
                            len(removed))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for p in clean_partial(self.ckpt_root):
            log.warning("removed an incomplete checkpoint left by a killed run: %s", p)

    def _setup(self) -> int:
        cfg = self.cfg
        self.device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.info = init_distributed(self.device.type)
        self.device = pick_device(cfg, self.info)
        if self.info.is_main:
            self._prepare_run_dir()
        folder, state = self._resume_state() if self.resume else (None, None)
        self.model, self.tokenizer = initial_model(cfg)
        self.pooling = init_pooling(cfg)  # the init's own (mean for E5, last token for e5-mistral), kept when saved
        start = 0
        if folder is not None and state is not None:
            start = int(state["step"])
            self._load_weights(folder)
            log.info("resuming from %s (step %d)", folder, start)
        prepare_for_training(self.model, cfg)
        self.model.to(self.device)
        self.net: torch.nn.Module = self.model
        if self.info.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = self._optimizer()
        from transformers import get_linear_schedule_with_warmup

        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, cfg.warmup_steps, cfg.steps)
        bad_log = self.run_dir / "bad_records.log" if self.info.is_main else None
        self.stream = DistinctBatches(PairStream([(s.name, s.paths, s.weight) for s in cfg.sources], seed=cfg.seed,
                                                 buffer_size=cfg.shuffle_buffer, max_bad_fraction=cfg.max_bad_fraction,
                                                 bad_log=bad_log), hard_negatives=cfg.hard_negatives)
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.stream.load_state(state["data"])
            set_rng_state(state["rng"])
        self.autocast = torch.bfloat16 if cfg.bf16 else None
        self.cache = GradientCache(self.net, chunk_size=cfg.chunk_size, autocast_dtype=self.autocast,
                                   pooling=self.pooling)
        return start

    def _load_weights(self, folder: Path) -> None:
        from safetensors.torch import load_file

        result = self.model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=False)
        names = dict(self.model.named_parameters())
        missing = [k for k in result.missing_keys if k in names]
        if missing or result.unexpected_keys:
            raise RuntimeError(f"checkpoint {folder} does not fit the model: missing {missing[:5]}, "
                               f"unexpected {result.unexpected_keys[:5]}")

    def _optimizer(self) -> torch.optim.Optimizer:
        decay = [p for n, p in self.model.named_parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for n, p in self.model.named_parameters() if p.requires_grad and p.ndim < 2]  # biases, norms
        groups = [{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=self.cfg.lr, fused=False, foreach=False)

    # -- one step -------------------------------------------------------------------------------------
    def _loss(self, reps: list[torch.Tensor]) -> ContrastiveOutput:
        q, p = gather_with_grad(reps[0]), gather_with_grad(reps[1])
        negs = gather_with_grad(reps[2]) if len(reps) > 2 else None
        rows = local_slice(q.shape[0], self.info) if self.info.enabled else None  # this rank's queries only
        if self.cfg.distill is not None:
            d = self.cfg.distill
            return distill_loss(q, p, negs, self._teacher, temperature=self.cfg.temperature,
                                teacher_temperature=d.teacher_temperature, alpha=d.alpha, rows=rows)
        return info_nce(q, p, negatives=negs, temperature=self.cfg.temperature, symmetric=self.cfg.symmetric,
                        rows=rows)

    def step(self, step: int) -> dict[str, float]:
        """One optimisation step on the next global batch; returns its metrics."""
        cfg, t0 = self.cfg, time.perf_counter()
        torch.manual_seed(cfg.seed * 1_000_003 + step * 7919 + self.info.rank)  # dropout masks: per step and rank
        pairs = self.stream.take(cfg.batch_size)[local_slice(cfg.batch_size, self.info)]
        lengths = [cfg.query_max_length or cfg.max_length] + [cfg.max_length] * 2
        batches = [tokenize(self.tokenizer, texts, n, self.device)
                   for texts, n in zip(pair_texts(pairs, cfg), lengths, strict=False)]
        if cfg.distill is not None:
            self._teacher = teacher_matrix(pairs, cfg.hard_negatives).to(self.device)  # this rank's rows
        self.optimizer.zero_grad(set_to_none=True)
        if cfg.chunk_size or self.info.enabled:
            out = self.cache.backward(batches, self._loss)
        else:
            out = full_batch_backward(self.net, batches, self._loss, autocast_dtype=self.autocast, pooling=self.pooling)
        norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        loss, accuracy = mean_over_ranks([float(out.loss), out.accuracy], self.device)  # each rank saw its rows
        seconds = time.perf_counter() - t0
        tokens = sum(int(b["attention_mask"].sum()) for b in batches) * self.info.world_size
        return {"loss": loss, "accuracy": accuracy, "lr": lr, "grad_norm": float(norm),
                "pairs_per_s": cfg.batch_size / seconds, "tokens_per_s": tokens / seconds, "step_seconds": seconds,
                "deferred_twins": self.stream.counts["deferred"], "dropped_twins": self.stream.counts["dropped"]}

    # -- checkpoints ----------------------------------------------------------------------------------
    def save(self, step: int) -> Path | None:
        """Checkpoint after `step` steps (rank 0 writes; the others wait)."""
        folder = None
        if self.info.is_main:
            from e5kit.model.save import InferenceSpec, write_checkpoint

            prompts = {"query": self.cfg.query_prefix, "passage": self.cfg.passage_prefix}
            max_len = inference_max_length(self.cfg, self.model)

            def write_model(dest: Path) -> None:
                write_checkpoint(dest, self.model, self.tokenizer, InferenceSpec(max_len, prompts, self.pooling),
                                 extra_files={"train_config.json": self.cfg.to_dict()})

            state = {"step": step, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "rng": rng_state(), "data": self.stream.state(), "config": self.cfg.to_dict()}
            folder = save_training_checkpoint(self.ckpt_root, step, write_model=write_model, state=state,
                                              keep_last=self.cfg.keep_last, run_id=self.run_id)
        if self.info.enabled:
            torch.distributed.barrier()
        return folder

    def _out_of_time(self, t_start: float) -> bool:
        """True on every rank at once when max_minutes is spent (rank 0's clock decides)."""
        if not self.cfg.max_minutes:
            return False
        flag = torch.tensor([float(time.monotonic() - t_start > self.cfg.max_minutes * 60)], device=self.device)
        if self.info.enabled:
            torch.distributed.broadcast(flag, src=0)
        return bool(flag.item())

    # -- the loop -------------------------------------------------------------------------------------
    def run(self) -> Path:
        """Train to `cfg.steps`; returns the final checkpoint folder."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        try:
            start = self._setup()
        except BaseException:
            self._remove_empty_run_dir()  # a run that could not start leaves no empty folder behind
            raise
        main = self.info.is_main
        if main:
            save_config(cfg, self.run_dir / "train_config.json")
        metrics = MetricsLog(self.run_dir, resume_step=start if self.resume else None) if main else None
        bar = tqdm(total=cfg.steps, initial=start, disable=not (cfg.show_progress and main), desc="train", unit="step")
        last = latest(self.ckpt_root) if start else None
        t_start = time.monotonic()
        try:
            for step in range(start, cfg.steps):
                values = self.step(step)
                done = step + 1
                if metrics is not None and (done % cfg.log_every == 0 or done == cfg.steps):
                    metrics.write(done, values)
                bar.set_postfix(loss=f"{values['loss']:.3f}", acc=f"{values['accuracy']:.2f}",
                                lr=f"{values['lr']:.2e}", pairs_s=f"{values['pairs_per_s']:.1f}")
                bar.update(1)
                want_eval = bool(self.eval_hook and cfg.eval_every and done % cfg.eval_every == 0)
                out_of_time = self._out_of_time(t_start)
                if done % cfg.save_every == 0 or done == cfg.steps or want_eval or out_of_time:
                    last = self.save(done)
                if want_eval and main and last is not None:
                    scores = self.eval_hook(last)
                    metrics.write(done, {f"eval/{k}": float(v) for k, v in scores.items()})
                    log.info("step %d eval: %s", done, scores)
                if out_of_time:
                    log.warning("max_minutes=%s reached: stopped after step %d of %d", cfg.max_minutes, done, cfg.steps)
                    break
        finally:
            bar.close()
            if metrics is not None:
                metrics.close()
        if self.stream.bad.bad and main:
            log.warning("skipped %d malformed of %d pair records (see %s)", self.stream.bad.bad,
                        self.stream.bad.seen, self.run_dir / "bad_records.log")
        return last or latest(self.ckpt_root) or self.ckpt_root  # the checkpoint this run wrote last


def train(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False,
          eval_hook: EvalHook | None = None) -> Path:
    """Run a training described by `cfg`; returns the final checkpoint folder (E5-loadable).

    An `output_dir` that holds an earlier run is refused unless `resume` (continue it, with the same
    settings) or `overwrite` (delete its checkpoints, metrics and logs first)."""
    return Trainer(cfg, resume=resume, overwrite=overwrite, eval_hook=eval_hook).run()
