"""`e5kit encode INPUT -o OUTPUT --role query|passage|none`."""

from __future__ import annotations

import argparse

from e5kit.cli.common import add_instruction_arg, add_model_args, model_loader, progress_flag


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="embed texts from a file or stdin into .npy/.jsonl/.parquet",
                       description="Embed every text of INPUT (.txt one per line, .jsonl[.gz], .parquet, or - for "
                       "stdin text) and write OUTPUT (.npy, .jsonl[.gz], .parquet). JSONL records give 'text' or "
                       "'title' + 'text'; ids (_id or id) are kept when every record has one. Input and output "
                       "are checked before the model loads.")
    p.add_argument("input", help="input file, or - for stdin (one text per line)")
    p.add_argument("-o", "--output", required=True,
                   help="output file: .npy (ids in NAME.ids.jsonl beside it), .jsonl[.gz], .parquet; never the input")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT (and its ids file)")
    p.add_argument("--role", choices=("query", "passage", "none"), required=True,
                   help="which prompt to add: the model's query or passage prompt, or none")
    p.add_argument("--text-field", default="text", help="JSONL/Parquet field with the text (default: text)")
    p.add_argument("--title-field", default="title",
                   help="field joined before the text as title + ' ' + text (default: title; '' for none)")
    p.add_argument("--id-field", default="_id", help="id field (default: _id, then id)")
    p.add_argument("--no-normalize", action="store_true", help="skip L2 normalization")
    add_instruction_arg(p, " (with --role query)")
    add_model_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from e5kit.embed_file import encode_file
    from e5kit.io.records import CorpusFields

    fields = CorpusFields(id=args.id_field, title=args.title_field or None, text=args.text_field)
    path, count = encode_file(model_loader(args), args.input, args.output, role=args.role, fields=fields,
                              normalize=not args.no_normalize, show_progress=progress_flag(args),
                              overwrite=args.overwrite, instruction=args.instruction)
    logging.getLogger("e5kit").info("wrote %d embeddings to %s", count, path)
    return 0
