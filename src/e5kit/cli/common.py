"""Argument groups shared by subcommands (model, device, precision), so no block is pasted twice."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import Any

from e5kit.encode.batching import DEFAULT_BUDGETS

INSTRUCTION_HELP = ("instruct models (multilingual-e5-large-instruct, e5-mistral-7b-instruct): the task description "
                    "in the query prompt ('Instruct: TEXT\\nQuery: '); default: the model's documented one. Refused "
                    "for other models")


def add_instruction_arg(p: argparse.ArgumentParser, extra: str = "") -> None:
    """--instruction TEXT, the one wording on every command that embeds queries."""
    p.add_argument("--instruction", default=None, metavar="TEXT", help=INSTRUCTION_HELP + extra)


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--model, --device, --precision, --batch-tokens, --max-length."""
    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", default=None,
                   help="local folder or hub id (default: intfloat/e5-base-unsupervised; env E5KIT_MODEL)")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when present)")
    g.add_argument("--precision", default=None,
                   help="fp32 (default, exact), bf16, fp16 (GPU), int8, ov-fp32 / ov-bf16 / ov-int8 / ov-int8w "
                        "(OpenVINO, CPU), auto; docs/precision.md")
    g.add_argument("--batch-tokens", type=int, default=None, metavar="N",
                   help=f"token budget per batch (padded tokens; default {DEFAULT_BUDGETS})")
    g.add_argument("--max-length", type=int, default=None, metavar="T",
                   help="truncate inputs to T tokens (default: the checkpoint's limit)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="allow a checkpoint that ships its own Python code (auto_map) to run it; read it first")


def model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """E5's keyword arguments from the model argument group (those not given are left out)."""
    kwargs: dict[str, Any] = {"device": args.device, "precision": args.precision}
    if args.batch_tokens is not None:
        kwargs["max_tokens_per_batch"] = args.batch_tokens
    if args.max_length is not None:
        kwargs["max_seq_length"] = args.max_length
    if getattr(args, "trust_remote_code", False):
        kwargs["trust_remote_code"] = True
    return kwargs


def load_model(args: argparse.Namespace) -> Any:
    """An E5 from the model arguments; the default model comes from E5KIT_MODEL or the E5 default."""
    from e5kit import E5
    from e5kit.model.checkpoint import default_model_name

    return E5(args.model or default_model_name(), **model_kwargs(args))


def require_inputs(*paths: str | None) -> None:
    """Fail before the model loads (seconds) when an input file or folder the command needs is missing."""
    from pathlib import Path

    for path in paths:
        if path and path != "-" and not Path(path).expanduser().exists():
            raise FileNotFoundError(f"no such file or folder: {path}")


def model_loader(args: argparse.Namespace) -> Callable[[], Any]:
    """`load_model(args)` for later: library jobs call it once their inputs and outputs are checked."""
    return functools.partial(load_model, args)


def progress_flag(args: argparse.Namespace) -> bool | None:
    return False if getattr(args, "no_progress", False) else None


def add_query_args(p: argparse.ArgumentParser) -> None:
    """--query (repeatable), --queries FILE, -k, --json, --instruction."""
    p.add_argument(
        "--query", "-q", action="append", default=[], metavar="Q", help="a query (repeat for more)"
    )
    p.add_argument(
        "--queries",
        metavar="FILE",
        help="more queries from a file: .txt (one per line) or .jsonl[.gz] with _id/text (BEIR)",
    )
    p.add_argument("-k", type=int, default=10, help="results per query (default: 10)")
    p.add_argument("--json", action="store_true", help="one JSON object per query on stdout (JSON Lines)")
    add_instruction_arg(p)


def read_queries(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(ids, texts) of the queries given by --query and --queries; at least one is required."""
    ids = [str(i) for i in range(len(args.query))]
    texts = list(args.query)
    if args.queries:
        from e5kit.io.records import iter_text_records

        for rec in iter_text_records(args.queries, title_field=None):
            ids.append(rec.id)
            texts.append(rec.text)
    if not texts:
        raise ValueError("no query given: use --query TEXT (repeatable) or --queries FILE")
    if args.k < 1:
        raise ValueError(f"-k must be a positive int, got {args.k}")
    return ids, texts


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """--engine, --address, --ray-workers, --gpus-per-worker: where an encoding job runs (docs/scale.md)."""
    g = p.add_argument_group("engine")
    g.add_argument("--engine", choices=("inprocess", "ray"), default="inprocess",
                   help="encode in this process (default) or on Ray Data, one E5 actor per GPU or CPU worker")
    g.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    g.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="E5 actors (default: one per GPU of the cluster, else one per CPU)")
    g.add_argument("--gpus-per-worker", type=float, default=None, help="GPUs per actor (default 1 if any, else 0)")


def engine_encoder(args: argparse.Namespace) -> Any:
    """The `encode_groups` of --engine (None: in this process); the settings are checked before any work."""
    if args.engine != "ray":
        return None
    from e5kit.scale.ray_index import RaySettings, ray_encoder

    return ray_encoder(RaySettings(address=args.address, workers=args.ray_workers,
                                   gpus_per_worker=args.gpus_per_worker))


def engine_pair_encoder(args: argparse.Namespace) -> Any:
    """`pairs filter`'s model: the name (encoded in this process) or, with --engine ray, a pool of E5 actors."""
    if args.engine != "ray":
        return args.model
    from e5kit.scale.ray_index import RaySettings
    from e5kit.scale.ray_pairs import RayPairEncoder

    return RayPairEncoder(args.model, RaySettings(address=args.address, workers=args.ray_workers,
                                                  gpus_per_worker=args.gpus_per_worker),
                          precision=args.precision, max_seq_length=args.max_seq_length)
