"""Man pages: (NAME line, DESCRIPTION) read straight from roff source (man and mdoc macros), so that tens of
thousands of pages take seconds instead of a groff run each.

The NAME section is the first section; the description is the section titled DESCRIPTION, or for translated
pages the first section after the synopsis. Pages in /usr/share/man/<lang>/ are kept (with `meta.lang`) so the
language filter has something to do; `.so` redirects and symlinks are skipped."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from e5kit.data.apt_install import apt_install
from e5kit.data.dumps import clip_paragraphs, open_dump_text, paragraphs
from e5kit.data.pairs import Pair, clean_space

NAME = "manpages"
MAN_DIR = Path("/usr/share/man")
APT_PACKAGES = ("man-db", "manpages")
_LOCALE = re.compile(r"[a-z]{2,3}([_@.][\w@.]+)?")
_PARA = {"PP", "LP", "P", "TP", "IP", "HP", "sp", "Pp", "Bl", "El", "It", "Bd", "Ed", "br", "TQ"}
_KEEP_ARGS = {"B", "I", "SM", "SB", "Nm", "Ar", "Pa", "Em", "Sy", "Cm", "Va", "Ev", "Dv", "Er", "Ic", "Li", "Ql",
              "Dq", "Sq", "Pq", "Qq", "Op", "Ad", "An", "Lk", "Mt", "Tn", "Ux", "Fn", "Fa", "Ft", "Nd", "Ms", "Ta",
              "BR", "BI", "IB", "IR", "RB", "RI", "UR", "MT", "Xo", "Xc", "Aq", "Dl"}
_ESCAPES: list = [(re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""), (re.compile(r"\\s[+-]?\d"), ""),
            (re.compile(r"\\\((em|en)"), "-"), (re.compile(r"\\\((lq|rq|dq)"), '"'),
            (re.compile(r"\\\((oq|cq|aq)"), "'"), (re.compile(r"\\\(bu"), "*"), (re.compile(r"\\\(co"), "(c)"),
            (re.compile(r"\\\*\((lq|rq)"), '"'), (re.compile(r"\\\*(\[[^\]]*\]|\(..|.)"), ""),
            (re.compile(r"\\\(..|\\\[[^\]]*\]"), ""), (re.compile(r"\\[&c%:|^)/,dv0~ ]"), " "),
            (re.compile(r"\\-"), "-"), (re.compile(r"\\e"), lambda m: "\\"), (re.compile(r'\\".*$'), "")]


def default_inputs(*, install: bool = False) -> list[Path]:
    if not MAN_DIR.exists() and install:
        apt_install(APT_PACKAGES)
    return page_files(MAN_DIR) if MAN_DIR.exists() else []


def page_files(root: str | os.PathLike[str]) -> list[Path]:
    """Regular (non-symlink) page files under man*/ folders, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if Path(dirpath).name.startswith("man"):
            out += [Path(dirpath) / f for f in sorted(filenames) if not os.path.islink(Path(dirpath) / f)]
    return out


expand_folder = page_files


def page_language(path: Path) -> str:
    """The locale folder of a page (man/de/man1/ls.1 -> "de"), "en" for the untranslated tree."""
    locale = path.parent.parent.name
    return locale if locale != "man" and _LOCALE.fullmatch(locale) else "en"


def unescape(text: str) -> str:
    """Text of a roff line with font, size and character escapes resolved or dropped."""
    for pattern, repl in _ESCAPES:
        text = pattern.sub(repl, text)
    return text


def _macro_text(name: str, args: str) -> str | None:
    if name in ("Fl",):
        return " ".join(f"-{a}" for a in args.split()) or "-"
    if name == "Xr":
        parts = args.split()
        return f"{parts[0]}({parts[1]})" if len(parts) >= 2 else args
    if name in _KEEP_ARGS:
        joiner = "" if len(name) == 2 and name.isupper() and name not in ("SM", "SB", "UR", "MT") else " "
        return joiner.join(a.strip('"') for a in re.findall(r'"[^"]*"|\S+', args))
    return None


def parse_sections(lines: Iterator[str]) -> list[tuple[str, str]]:
    """(section title, text) pairs of a roff page; empty for `.so` redirects."""
    sections: list[tuple[str, list[str]]] = []
    for raw in lines:
        line = raw.rstrip("\n")
        if line.startswith((".\\\"", "'\\\"", '.\\"')):
            continue
        if line.startswith((".", "'")):
            name, _, args = line[1:].strip().partition(" ")
            if name == "so" and not sections:
                return []
            if name in ("SH", "Sh"):
                sections.append((clean_space(unescape(args).strip('"')).upper(), []))
                continue
            if not sections:
                continue
            if name in _PARA:
                sections[-1][1].append("\n\n")
            text = _macro_text(name, unescape(args))
            if text is not None:
                sections[-1][1].append(text + " ")
        elif sections:
            sections[-1][1].append(unescape(line) + " ")
    return [(title, paragraphs("".join(parts))) for title, parts in sections]


def iter_file(path: str | os.PathLike[str], *, max_passage_chars: int = 2000) -> Iterator[Pair]:
    path = Path(path)
    with open_dump_text(path) as fh:
        sections = parse_sections(iter(fh))
    if len(sections) < 2:
        return
    name = clean_space(sections[0][1].replace("\n", " "))
    described = [text for title, text in sections if title == "DESCRIPTION"]
    if not described:
        described = [sections[2][1] if len(sections) > 2 else sections[1][1]]
    text = clip_paragraphs(described[0], max_passage_chars)
    if name and text:
        yield Pair(name, text, NAME, {"page": path.name, "lang": page_language(path)})
