"""`e5kit serve`: an HTTP embedding server (OpenAI- and TEI-compatible) for one model or several."""

from __future__ import annotations

import argparse

from e5kit.encode.batching import DEFAULT_BUDGETS


def register(subparsers: argparse._SubParsersAction) -> None:
    from e5kit.serve.config import TOKEN_ID_MODES

    p = subparsers.add_parser("serve", help="serve embeddings over HTTP (OpenAI-compatible, E5 prompts)",
                              description="Serve models over HTTP: POST /v1/embeddings (OpenAI), /, /embed, "
                              "/similarity (TEI); GET /v1/models, /health, /ready, /info, /metrics. Loopback only "
                              "by default.")
    p.add_argument("--model", "-m", action="append", default=None, metavar="[NAME=]PATH",
                   help="model folder or hub id, optionally named (NAME=PATH); repeat to serve several, routed by "
                   "the request's `model` (the first is the default). Default intfloat/e5-base-unsupervised")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' (default: the E5KIT_API_KEY environment variable)")
    p.add_argument("--device", default=None)
    p.add_argument("--precision", default=None, choices=["fp32", "bf16", "fp16"])
    p.add_argument("--max-seq-length", type=int, default=None)
    p.add_argument("--default-input-type", default="query", choices=["query", "passage", "none"],
                   help="prefix for requests that do not say (default query, E5's choice for symmetric tasks)")
    p.add_argument("--token-ids", default="cl100k", choices=TOKEN_ID_MODES,
                   help="how /v1/embeddings reads token-id input: cl100k (default) decodes tiktoken cl100k_base ids, "
                   "which OpenAI clients such as LangChain send, to text; model reads them as the served model's "
                   "vocabulary; reject answers 422")
    p.add_argument("--auto-truncate", action="store_true",
                   help="cut over-long inputs by default instead of answering 413")
    p.add_argument("--max-batch-tokens", type=int, default=None,
                   help=f"padded tokens per model batch (default: {DEFAULT_BUDGETS})")
    p.add_argument("--max-batch-size", type=int, default=256, help="inputs per model batch")
    p.add_argument("--max-request-inputs", type=int, default=2048)
    p.add_argument("--max-request-tokens", type=int, default=262144)
    p.add_argument("--max-queue-tokens", type=int, default=1048576,
                   help="tokens waiting at most; beyond, requests get 429 with Retry-After")
    p.add_argument("--max-queue-seconds", type=float, default=10.0,
                   help="shed requests (429) when more than this many seconds of work wait, at the measured "
                   "speed; 0 turns this off")
    p.add_argument("--max-body-bytes", type=int, default=16 * 1024 * 1024)
    p.add_argument("--max-concurrency", type=int, default=1024, help="open connections; beyond, 503")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from e5kit.model.checkpoint import DEFAULT_MODEL
    from e5kit.serve.config import ServeConfig, api_key_from_env
    from e5kit.serve.server import load_and_serve

    config = ServeConfig(
        host=args.host, port=args.port, api_key=api_key_from_env(args.api_key),
        max_batch_tokens=args.max_batch_tokens, max_batch_size=args.max_batch_size,
        max_request_inputs=args.max_request_inputs, max_request_tokens=args.max_request_tokens,
        max_queue_tokens=args.max_queue_tokens, max_queue_seconds=args.max_queue_seconds or None,
        max_body_bytes=args.max_body_bytes,
        max_concurrency=args.max_concurrency, default_input_type=args.default_input_type,
        auto_truncate=args.auto_truncate, token_ids=args.token_ids)
    load_and_serve(args.model or [DEFAULT_MODEL], config, device=args.device, precision=args.precision,
                   max_seq_length=args.max_seq_length, log_level=args.log_level)
    return 0
