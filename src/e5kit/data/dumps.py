"""Opening raw dump files whatever their compression, and turning HTML into plain text."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
from pathlib import Path
from typing import IO

from e5kit.data.pairs import clean_space
from e5kit.errors import E5kitError

_BLOCK_TAGS = ("p", "div", "br", "li", "ul", "ol", "pre", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6",
               "tr", "table", "dt", "dd", "section", "hr")
_BLANKS = re.compile(r"\n\s*\n+")


def open_dump(path: str | os.PathLike[str]) -> IO[bytes]:
    """A binary stream of a dump file, decompressing .gz, .bz2, .xz and .zst (the last needs `zstandard`)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such input file: {p}")
    name = p.name.lower()
    if name.endswith(".gz"):
        return gzip.open(p, "rb")
    if name.endswith(".bz2"):
        return bz2.open(p, "rb")
    if name.endswith(".xz"):
        return lzma.open(p, "rb")
    if name.endswith(".zst"):
        try:
            import zstandard
        except ImportError as exc:
            raise E5kitError(f"{p}: reading .zst needs the 'zstandard' package (pip install zstandard)") from exc
        return zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(open(p, "rb"))
    return open(p, "rb")


def open_dump_text(path: str | os.PathLike[str]) -> IO[str]:
    """A UTF-8 text stream of a dump file (undecodable bytes replaced)."""
    return io.TextIOWrapper(open_dump(path), encoding="utf-8", errors="replace")


def html_to_text(html: str) -> str:
    """Visible text of an HTML fragment: block elements become paragraph breaks, other whitespace collapses."""
    if not html or not html.strip():
        return ""
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return clean_space(html)
    etree.strip_elements(root, "script", "style", with_tail=False)
    for el in root.iter(*_BLOCK_TAGS):
        el.tail = "\n\n" + (el.tail or "")
    return paragraphs(root.text_content())


def paragraphs(text: str) -> str:
    """Whitespace-normalised text keeping paragraph breaks as one blank line."""
    parts = (clean_space(p) for p in _BLANKS.split(text))
    return "\n\n".join(p for p in parts if p)


def clip_paragraphs(text: str, max_chars: int) -> str:
    """The leading paragraphs of `text` that fit in `max_chars` (at least part of the first one, cut at a space)."""
    if len(text) <= max_chars:
        return text
    out = ""
    for para in text.split("\n\n"):
        candidate = f"{out}\n\n{para}" if out else para
        if len(candidate) > max_chars:
            break
        out = candidate
    if not out:
        out = text[:max_chars].rsplit(" ", 1)[0]
    return out
