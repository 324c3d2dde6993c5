"""`e5kit bench`: sentence-transformers vs every e5kit precision mode, same texts, one run."""

from __future__ import annotations

import argparse

from e5kit.encode.batching import DEFAULT_BUDGETS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="encoding speed and quality: sentence-transformers vs e5kit modes",
        description="Encode the same texts with sentence-transformers (fp32, its defaults) and each e5kit "
                    "mode, alternating; print texts/s, real tokens/s, ratio to ST, peak RSS, FLOP/s as a "
                    "share of the measured matmul peak, and agreement with fp32. --quality adds SciFact "
                    "nDCG@10 and STSB Spearman per mode (all-MiniLM-L6-v2 size).")
    p.add_argument("--size", choices=["minilm", "base", "xlmr-base", "both"], default="both",
                   help="all-MiniLM-L6-v2 real weights at 256 tokens, a random BERT-base at 512, both of those, "
                        "or a random XLM-R-base (multilingual-e5-base shape) at 512")
    p.add_argument("--model", default=None, help="checkpoint for the minilm size (default: the gt package)")
    p.add_argument("--data", default=None, help="evaluation data folder with scifact/ (texts) and sts/; "
                                                "without it synthetic texts are used")
    p.add_argument("--texts", type=int, default=None, help="texts per size (default: 200 minilm, 24 base sizes)")
    p.add_argument("--reps", type=int, default=2, help="alternating repetitions; the best is reported")
    p.add_argument("--modes", default=None,
                   help="comma list, e.g. fp32,fp32-hf,bf16,int8,ov-fp32,ov-bf16,ov-int8 (suffix -hf or -jagged picks "
                        "the torch backend; ov- modes run on OpenVINO)")
    p.add_argument("--st-backends", default=None,
                   help="sentence-transformers backends besides torch, comma list of onnx, openvino, openvino-int8 "
                        "(default on CPU: all three; 'none' for torch only); those that cannot load are skipped "
                        "with the reason")
    p.add_argument("--st-python", default=None,
                   help="Python that runs those backends, in a worker process (default: $E5KIT_ST_PYTHON, else "
                        ".venv-st/bin/python when `make st-env` built it, else this process; 'here' forces this "
                        "process). Their optimum pins an older transformers, hence the separate environment")
    p.add_argument("--device", default=None)
    p.add_argument("--batch-size", type=int, default=32,
                   help="sentence-transformers batch size (its default, 32)")
    p.add_argument("--batch-tokens", type=int, default=None,
                   help=f"e5kit's padded-token budget per batch (default: e5kit's own, {DEFAULT_BUDGETS})")
    p.add_argument("--quality", action="store_true", help="also SciFact nDCG@10 / STSB Spearman per mode")
    p.add_argument("--quality-docs", type=int, default=None,
                   help="SciFact sub-corpus size for --quality: all judged docs + a seeded sample (default: all)")
    p.add_argument("--out", default=None, help="write bench.json and bench.md here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from e5kit.bench.encode import DEFAULT_SIZES, EncodeBenchSettings, run_encode_bench
    from e5kit.bench.report import write_report

    settings = EncodeBenchSettings(
        sizes=DEFAULT_SIZES if args.size == "both" else (args.size,), data_dir=Path(args.data) if args.data else None,
        n_texts=args.texts, reps=args.reps, modes=args.modes.split(",") if args.modes else None, device=args.device,
        st_backends=_comma_list(args.st_backends), st_python=args.st_python,
        model=Path(args.model) if args.model else None, st_batch=args.batch_size, batch_tokens=args.batch_tokens,
        quality=args.quality,
        quality_docs=args.quality_docs).check()
    result = run_encode_bench(settings)
    if args.out:
        print("wrote {} and {}".format(*write_report(result, args.out)))
    return 0


def _comma_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [] if value.strip() == "none" else [v.strip() for v in value.split(",") if v.strip()]
