"""Crash-safe training checkpoints: written atomically, the last K kept, the newest complete one found.

A checkpoint is a folder `step-NNNNNNN` holding an E5-loadable model (HF + sentence-transformers layout,
E5 prompts), the resolved config (train_config.json), trainer_state.pt (optimizer, scheduler, RNG
states, data position) and trainer_run.json (the id of the run that wrote it). It is assembled under a
dot-named temporary folder and renamed only when complete, so a kill at any moment leaves either the
previous checkpoints or the new one, never half of one. Leftover temporary folders are removed on the
next start. Retention (`keep_last`) only ever deletes checkpoints of the run being trained.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

STEP_DIR = re.compile(r"^step-(\d+)$")
STATE_FILE = "trainer_state.pt"
RUN_FILE = "trainer_run.json"
# What a run writes into its output_dir besides checkpoints/ (removed by --overwrite, nothing else is).
RUN_FILES = ("metrics.jsonl", "train_config.json", "bad_records.log")
RUN_DIRS = ("tensorboard",)


def step_dirs(ckpt_root: Path) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
    if not ckpt_root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_root.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()
             and (p / STATE_FILE).is_file()]
    return [p for _, p in sorted(found)]


def latest(ckpt_root: Path) -> Path | None:
    dirs = step_dirs(ckpt_root)
    return dirs[-1] if dirs else None


def clean_partial(ckpt_root: Path) -> list[Path]:
    """Remove temporary folders a killed run left behind; returns what was removed."""
    removed = []
    if ckpt_root.is_dir():
        for p in ckpt_root.iterdir():
            if p.name.startswith("."):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())


def write_state_files(tmp: Path, state: dict[str, Any]) -> None:
    """trainer_state.pt into the (still temporary) checkpoint folder."""
    torch.save(state, tmp / STATE_FILE)


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def run_id_of(folder: Path) -> str:
    """The id of the run that wrote checkpoint `folder` ("" for checkpoints written before ids existed)."""
    try:
        return str(json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))["run_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def save_training_checkpoint(ckpt_root: Path, step: int, *, write_model: Any, state: dict[str, Any],
                             keep_last: int, run_id: str = "") -> Path:
    """Write checkpoint `step` of run `run_id` atomically; `write_model(folder)` writes the model files into a
    folder. Then delete this run's checkpoints beyond the newest `keep_last` (never another run's)."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step:07d}"
    tmp = ckpt_root / f".step-{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    write_model(tmp)  # itself atomic: a temp folder renamed to `tmp`
    write_state_files(tmp, state)
    (tmp / RUN_FILE).write_text(json.dumps({"run_id": run_id, "step": step}) + "\n", encoding="utf-8")
    _fsync_tree(tmp)
    if final.exists():  # re-written after a resume: replace the old one
        shutil.rmtree(final)
    os.replace(tmp, final)
    mine = [p for p in step_dirs(ckpt_root) if run_id_of(p) == run_id]
    for old in mine[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def describe_run(run_dir: Path, ckpt_root: Path) -> str | None:
    """What an earlier run left in `run_dir` ("checkpoints up to step 40"), or None when it holds none."""
    dirs = [p for p in ckpt_root.iterdir() if STEP_DIR.match(p.name)] if ckpt_root.is_dir() else []
    if dirs:
        return f"checkpoints up to step {max(int(STEP_DIR.match(p.name).group(1)) for p in dirs)}"
    metrics = run_dir / RUN_FILES[0]
    if metrics.is_file() and metrics.stat().st_size:
        return f"{metrics.name} of an earlier run"
    return None


def remove_run(run_dir: Path, ckpt_root: Path) -> list[Path]:
    """Delete what an earlier run wrote into `run_dir` (its checkpoints, metrics, config, logs) and nothing
    else; returns what was removed."""
    removed = [p for p in ckpt_root.iterdir() if STEP_DIR.match(p.name) or p.name.startswith(".step-")] \
        if ckpt_root.is_dir() else []
    removed += [run_dir / n for n in (*RUN_FILES, *RUN_DIRS) if (run_dir / n).exists()]
    for p in removed:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return removed


def load_state(folder: Path) -> dict[str, Any]:
    # Our own file; it holds numpy RNG state and python tuples, so the full unpickler is needed.
    return torch.load(folder / STATE_FILE, map_location="cpu", weights_only=False)
