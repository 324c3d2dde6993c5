"""Argument groups shared by subcommands (model, device, precision), so no block is pasted twice."""

from __future__ import annotations

import argparse
from typing import Any


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--model, --device, --precision, --batch-tokens, --max-length."""
    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", default=None,
                   help="local folder or hub id (default: intfloat/e5-base-unsupervised; env E5KIT_MODEL)")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when present)")
    g.add_argument("--precision", default=None, help="fp32 (default, exact), bf16, fp16 (GPU), int8, auto")
    g.add_argument("--batch-tokens", type=int, default=None, metavar="N",
                   help="token budget per batch (padded tokens)")
    g.add_argument("--max-length", type=int, default=None, metavar="T",
                   help="truncate inputs to T tokens (default: the checkpoint's limit)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_model(args: argparse.Namespace) -> Any:
    """An E5 from the model arguments; the default model comes from E5KIT_MODEL or the E5 default."""
    import os

    from e5kit import E5
    from e5kit.model.checkpoint import DEFAULT_MODEL

    kwargs: dict[str, Any] = {}
    if args.batch_tokens is not None:
        kwargs["max_tokens_per_batch"] = args.batch_tokens
    if args.max_length is not None:
        kwargs["max_seq_length"] = args.max_length
    model = args.model or os.environ.get("E5KIT_MODEL") or DEFAULT_MODEL
    return E5(model, device=args.device, precision=args.precision, **kwargs)


def progress_flag(args: argparse.Namespace) -> bool | None:
    return False if getattr(args, "no_progress", False) else None


def format_matrix(rows: list[str], cols: list[str], scores: Any, width: int = 40) -> str:
    """A plain-text table: one line per row label, one column per column label, scores to 2 decimals."""

    def short(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= width else text[: width - 1] + "…"

    labels = [f"P{j + 1}" for j in range(len(cols))]
    lines = ["  ".join(f"{label}: {short(c)}" for label, c in zip(labels, cols, strict=True))]
    lines.append(f"{'':{width}}  " + "  ".join(f"{label:>7}" for label in labels))
    for i, row in enumerate(rows):
        lines.append(f"{short(row):{width}}  " + "  ".join(f"{scores[i][j]:7.2f}" for j in range(len(cols))))
    return "\n".join(lines)
