"""e5kit: E5 text embeddings end to end.

`from e5kit import E5` is the one entry point for users; heavy libraries (torch, transformers)
are imported only when a model is loaded, so importing e5kit and `e5kit --help` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["E5", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from e5kit.embedder import E5


def __getattr__(name: str):
    if name == "E5":
        from e5kit.embedder import E5

        return E5
    raise AttributeError(f"module 'e5kit' has no attribute {name!r}")
