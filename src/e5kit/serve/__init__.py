"""HTTP serving: OpenAI-compatible embeddings with E5 prompts, dynamic token-budget batching, limits, metrics.

Needs the `serve` extra (fastapi, uvicorn, prometheus-client). See docs/serve.md.
"""

from __future__ import annotations

from e5kit.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app", "BackgroundServer", "load_and_serve"]


def __getattr__(name: str):
    if name == "create_app":
        from e5kit.serve.app import create_app

        return create_app
    if name in ("BackgroundServer", "load_and_serve"):
        from e5kit.serve import server

        return getattr(server, name)
    raise AttributeError(f"module 'e5kit.serve' has no attribute {name!r}")
