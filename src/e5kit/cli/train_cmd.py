"""`e5kit train CONFIG.yaml [--set key=value ...] [--resume | --overwrite]`: contrastive pre-training.

See docs/train.md.
"""

from __future__ import annotations

import argparse

# The most used keys also get their own flags; every other key is reachable with --set key=value.
SHORT_FLAGS = (("output_dir", str), ("init", str), ("steps", int), ("batch_size", int), ("chunk_size", int),
               ("lr", float), ("temperature", float), ("max_length", int), ("save_every", int), ("seed", int),
               ("device", str))


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="contrastive pre-training (InfoNCE, GradCache, torchrun, resumable)",
                              description="Train an E5-style encoder on pair shards. Every config key can be set "
                              "with --set key=value (dotted keys for nested ones, e.g. fresh.layers=4).")
    p.add_argument("config", nargs="?", help="YAML config file (see configs/); optional if --set gives everything")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set symmetric=true --set fresh.hidden=256 (repeatable)")
    for key, kind in SHORT_FLAGS:
        p.add_argument(f"--{key.replace('_', '-')}", dest=f"opt_{key}", type=kind, default=None, metavar=key.upper(),
                       help=f"same as --set {key}=VALUE")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue from the newest complete checkpoint in output_dir (same settings)")
    again.add_argument("--overwrite", action="store_true",
                       help="replace an earlier run in output_dir (its checkpoints, metrics and logs are deleted)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.set_defaults(run=run)


def _overrides(args: argparse.Namespace) -> list[str]:
    """--set values, then the short flags given, as key=value overrides."""
    values = {key: getattr(args, f"opt_{key}") for key, _ in SHORT_FLAGS}
    given = [f"{key}={value}" for key, value in values.items() if value is not None]
    return [*args.overrides, *given, *(["show_progress=false"] if args.no_progress else [])]


def run(args: argparse.Namespace) -> int:
    from e5kit.train.config import load_config

    cfg = load_config(args.config, _overrides(args))
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    from e5kit.train.evalhook import hook_for_tasks
    from e5kit.train.trainer import train

    folder = train(cfg, resume=args.resume, overwrite=args.overwrite, eval_hook=hook_for_tasks(cfg.eval_tasks))
    print(folder)
    return 0
