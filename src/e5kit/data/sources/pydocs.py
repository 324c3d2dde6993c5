"""Python documentation: (page title + section title, section text) from the Sphinx HTML of python3-doc.

Each `<section>` (or older `<div class="section">`) gives one pair; its text excludes nested sections, which give
their own pairs. Index, search and download pages are skipped."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from e5kit.data.apt_install import apt_install
from e5kit.data.dumps import paragraphs
from e5kit.data.pairs import Pair, clean_space

NAME = "pydocs"
DOC_DIR = Path("/usr/share/doc/python3-doc/html")
APT_PACKAGES = ("python3-doc",)
_SKIP = ("genindex", "search", "py-modindex", "download", "contents", "copyright", "license", "bugs")
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")


def default_inputs(*, install: bool = False) -> list[Path]:
    if not DOC_DIR.exists() and install:
        apt_install(APT_PACKAGES)
    return html_files(DOC_DIR) if DOC_DIR.exists() else []


def html_files(root: str | os.PathLike[str]) -> list[Path]:
    """Documentation pages under `root` (symlinks followed), sorted, without index/search pages."""
    root = Path(root).resolve()
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("_"))
        out += [Path(dirpath) / f for f in sorted(filenames)
                if f.endswith(".html") and not f.startswith(_SKIP)]
    return out


expand_folder = html_files


def _is_section(el) -> bool:
    return el.tag == "section" or (el.tag == "div" and "section" in (el.get("class") or "").split())


def _heading(section) -> str:
    for child in section:
        if child.tag in _HEADINGS:
            return clean_space(child.text_content().replace("¶", ""))
    return ""


def _own_text(section) -> str:
    parts = []
    for child in section:
        if child.tag in _HEADINGS or _is_section(child) or not isinstance(child.tag, str):
            continue
        if "toctree-wrapper" in (child.get("class") or ""):
            continue
        for br in child.iter("p", "pre", "li", "dt", "dd", "div"):
            br.tail = "\n\n" + (br.tail or "")
        parts.append(child.text_content())
    return paragraphs("\n\n".join(parts).replace("¶", ""))


def iter_file(path: str | os.PathLike[str]) -> Iterator[Pair]:
    import lxml.html

    raw = Path(path).read_bytes().decode("utf-8", errors="replace")  # Sphinx writes UTF-8
    if not raw.strip():
        return
    root = lxml.html.document_fromstring(raw)
    sections = [el for el in root.iter("section", "div") if _is_section(el)]
    page = _heading(sections[0]) if sections else ""
    for sec in sections:
        title = _heading(sec)
        text = _own_text(sec)
        if not title or not text:
            continue
        query = title if title == page else f"{page}: {title}"
        yield Pair(query, text, NAME, {"file": Path(path).name, "anchor": sec.get("id", "")})
