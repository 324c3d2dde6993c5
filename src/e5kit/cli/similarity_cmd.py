"""`e5kit similarity --query Q ... --passage P ...`: the score matrix, cosine x 100 as the model card prints."""

from __future__ import annotations

import argparse

from e5kit.cli.common import add_instruction_arg, add_model_args, load_model
from e5kit.cli.render import format_matrix


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("similarity", help="cosine x 100 between queries and passages",
                       description="Embed queries (query prompt) and passages (passage prompt) and print the "
                       "query x passage matrix of cosine x 100, as the E5 model card does.")
    p.add_argument("--query", "-Q", action="append", required=True, help="a query (repeat for more)")
    p.add_argument("--passage", "-P", action="append", required=True, help="a passage (repeat for more)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_instruction_arg(p)
    add_model_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    e5 = load_model(args)
    scores = e5.similarity(e5.encode_queries(args.query, instruction=args.instruction),
                           e5.encode_passages(args.passage)) * 100
    if args.json:
        print(json.dumps({"model": e5.name, "prompts": e5.prompts, "scores": scores.round(4).tolist()}))
    else:
        print(format_matrix(args.query, args.passage, scores))
    return 0
