"""`e5kit` command line: parse arguments, call the library, print. Nothing else lives here.

Each subcommand is a module in this package with `register(subparsers)` (argparse only, no heavy
imports) and `run(args) -> int`. Library errors become one line on stderr and exit code 1
(traceback with --debug); usage errors exit 2, as argparse does.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence

# Subcommand modules, in the order `--help` lists them.
COMMANDS = ("encode", "similarity", "search", "eval", "report", "bench", "index", "pairs", "mine", "train", "plot",
            "serve")


def build_parser() -> argparse.ArgumentParser:
    from e5kit import __version__

    parser = argparse.ArgumentParser(prog="e5kit", description="E5 text embeddings: encode, search, evaluate, "
                                     "build weak pairs, pre-train and serve.")
    parser.add_argument("--version", action="version", version=f"e5kit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")
    parser.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        if importlib.util.find_spec(f"e5kit.cli.{name}_cmd") is not None:
            importlib.import_module(f"e5kit.cli.{name}_cmd").register(sub)
    _global_flags_everywhere(parser)
    return parser


def _global_flags_everywhere(parser: argparse.ArgumentParser) -> None:
    """Accept --debug/--quiet after any subcommand, at any depth (`e5kit index build ... --debug`).

    Their default there is SUPPRESS: a subcommand that does not see the flag leaves `e5kit --debug CMD` as is.
    """
    for action in parser._actions:  # noqa: SLF001  (argparse has no public way to walk subcommands)
        if not isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            continue
        for child in dict.fromkeys(action.choices.values()):
            for flags, help_text in ((("--debug",), "show full tracebacks and debug logs (also before COMMAND)"),
                                     (("--quiet", "-q"), "only warnings and errors on stderr (also before COMMAND)")):
                free = [f for f in flags if f not in child._option_string_actions]  # noqa: SLF001
                if flags[0] in free:  # `-q` only where the command does not use it (search: --query)
                    child.add_argument(*free, action="store_true", default=argparse.SUPPRESS, help=help_text)
            _global_flags_everywhere(child)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `e5kit` script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    for noisy in ("httpx", "urllib3", "filelock", "huggingface_hub", "transformers", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.debug else logging.WARNING)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("e5kit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # one line for the user; the traceback only when asked for
        if args.debug:
            raise
        from e5kit.errors import E5kitError

        kind = "" if isinstance(exc, (E5kitError, OSError, ValueError, TypeError)) else f"{type(exc).__name__}: "
        print(f"e5kit {args.command}: error: {kind}{exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
