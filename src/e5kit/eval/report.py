"""Tables and a bar chart from result JSON files (results/<model>/<task>.json)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from e5kit.io.atomic import atomic_path


def load_results(folder: str | os.PathLike[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """{model slug: {task: result}} from every e5kit result JSON under `folder`."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder not found: {root}")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(root.rglob("*.json")):
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(obj, dict) or "e5kit_result" not in obj:
            continue
        slug = obj.get("model_slug") or path.parent.name
        out.setdefault(slug, {})[obj["task"]] = obj
    return out


def resolve_models(all_results: dict[str, dict[str, Any]], names: Sequence[str] | None) -> list[str]:
    """The result keys for the model names a user typed (all keys, sorted, when `names` is None).

    A name matches, in this order: a key exactly; the path of a checkpoint folder (its key, from its weights);
    a hub id ('intfloat/e5-base-unsupervised' -> 'intfloat__e5-base-unsupervised'); a key without its weights
    fingerprint ('my-ckpt' for 'my-ckpt@3f9c1a2b'); its last '__' parts ('e5-base-unsupervised',
    'step-0000002'); a prefix of the key or of one of its parts ('e5-small', 'a__step'). The first rule that
    matches decides; if it matches more than one key, the error lists them, as it lists every key when none
    matches.
    """
    keys = sorted(all_results)
    if names is None:
        return keys
    chosen: list[str] = []
    for name in names:
        key = _match(keys, name)
        if key in chosen:
            raise ValueError(f"{key} is named twice in the models to compare")
        chosen.append(key)
    return chosen


def _folder_key(name: str) -> str | None:
    from e5kit.eval.models import is_local_model, result_key

    if name.lower() == "bm25" or not is_local_model(name) or not Path(name).expanduser().is_dir():
        return None
    from e5kit.model.checkpoint import read_checkpoint

    try:
        return result_key(name, read_checkpoint(name).fingerprint())
    except Exception:  # noqa: BLE001  (a folder that is no checkpoint is matched by name below)
        return None


def _match(keys: list[str], name: str) -> str:
    from e5kit.eval.models import KEY_SEP

    typed = name.strip().strip("/").replace("/", "__")
    base = {k: k.split(KEY_SEP)[0] for k in keys}
    folder_key = _folder_key(name)
    rules = (
        lambda k: k == name,
        lambda k: k == folder_key,
        lambda k: k == typed,
        lambda k: base[k] == typed,
        lambda k: base[k].endswith("__" + typed),
        lambda k: k.startswith(typed) or any(part.startswith(typed) for part in base[k].split("__")[1:]),
    )
    for rule in rules:
        found = [k for k in keys if rule(k)]
        if len(found) == 1:
            return found[0]
        if found:
            raise ValueError(f"{name!r} matches several models: {', '.join(found)}; give more of the name")
    raise ValueError(f"no results for {name!r}; models found: {', '.join(keys)}")


def results_table(results: Sequence[dict[str, Any]]) -> str:
    """Markdown: one row per result of one model run (task, type, metric, score x100, time, tokens/s)."""
    lines = ["| task | type | metric | score | wall s | tokens/s |", "|---|---|---|---:|---:|---:|"]
    for r in results:
        tps = r.get("encode", {}).get("tokens_per_second") or 0
        lines.append(f"| {r['task']} | {r['task_type']} | {r['main_score']} | {100 * r['main_score_value']:.2f} "
                     f"| {r['wall_seconds']:.1f} | {tps:,.0f} |")
    return "\n".join(lines)


def compare_table(all_results: dict[str, dict[str, dict[str, Any]]], models: Sequence[str]) -> str:
    """Markdown: tasks as rows, models (result keys, see `resolve_models`) as columns (main score x100), plus a
    difference for two models."""
    missing = [m for m in models if m not in all_results]
    if missing:
        raise ValueError(f"no results for {missing}; models found: {sorted(all_results)}")
    tasks = list(dict.fromkeys(t for m in models for t in all_results[m]))
    head = ["task", "metric", *models] + (["diff"] if len(models) == 2 else [])
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for task in tasks:
        vals = [all_results[m].get(task) for m in models]
        metric = next(v["main_score"] for v in vals if v)
        cells = [f"{100 * v['main_score_value']:.2f}" if v else "—" for v in vals]
        if len(models) == 2:
            cells.append(f"{100 * (vals[1]['main_score_value'] - vals[0]['main_score_value']):+.2f}"
                         if all(vals) else "—")
        lines.append(f"| {task} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bar_chart(all_results: dict[str, dict[str, dict[str, Any]]], models: Sequence[str],
              path: str | os.PathLike[str]) -> Path:
    """Grouped bars of main scores (x100) per task, one colour per model, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = list(dict.fromkeys(t for m in models for t in all_results[m]))
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(tasks) + 2), 4.5))
    x = np.arange(len(tasks))
    for i, model in enumerate(models):
        # a task the model lacks gets no bar and no label (not a misleading 0)
        vals = [100 * all_results[model][t]["main_score_value"] if t in all_results[model] else np.nan for t in tasks]
        bars = ax.bar(x + (i - (len(models) - 1) / 2) * width, vals, width, label=model)
        ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.1f}" for v in vals], fontsize=7, padding=1)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{t}\n({next(all_results[m][t]['main_score'] for m in models if t in all_results[m])})"
                        for t in tasks], fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("main score x100")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8)
    ax.set_title("e5kit eval: main score per task")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return out
