"""PNG curves of a training run from RUN_DIR/metrics.jsonl (matplotlib, no display needed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from e5kit.train.metrics import read_metrics

PANELS = (("loss", "InfoNCE loss"), ("accuracy", "in-batch accuracy"), ("lr", "learning rate"))


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    head = np.cumsum(values[: window - 1]) / np.arange(1, window)  # partial means at the start
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def plot_run(run_dir: str | os.PathLike[str], *, out_dir: str | os.PathLike[str] | None = None,
             smooth: int = 0) -> list[Path]:
    """Write loss.png, accuracy.png, lr.png (and eval.png if the run evaluated); returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if smooth < 0:
        raise ValueError(f"smooth must be >= 0, got {smooth}")
    records = read_metrics(Path(run_dir))
    train = [r for r in records if "loss" in r]
    if not train:
        raise ValueError(f"{run_dir}: metrics.jsonl has no training records yet")
    out = Path(out_dir) if out_dir else Path(run_dir) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    steps = np.array([r["step"] for r in train])
    window = smooth or max(1, len(train) // 50)
    written = []
    for key, title in PANELS:
        vals = np.array([r.get(key, np.nan) for r in train], dtype=float)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(steps, vals, alpha=0.3 if key != "lr" and window > 1 else 1.0, label="per step")
        if key != "lr" and window > 1:
            ax.plot(steps, _smooth(vals, window), label=f"mean of {window}")
            ax.legend()
        ax.set(xlabel="step", ylabel=key, title=title)
        if key == "loss" and np.nanmin(vals) > 0:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / f"{key}.png", dpi=110)
        plt.close(fig)
        written.append(out / f"{key}.png")
    evals = [r for r in records if any(k.startswith("eval/") for k in r)]
    if evals:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for name in sorted({k for r in evals for k in r if k.startswith("eval/")}):
            pts = [(r["step"], r[name]) for r in evals if name in r]
            ax.plot(*zip(*pts, strict=True), marker="o", label=name.removeprefix("eval/"))
        ax.set(xlabel="step", ylabel="score", title="evaluation")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "eval.png", dpi=110)
        plt.close(fig)
        written.append(out / "eval.png")
    return written
