"""Wikipedia: (entity title + section title, section passage) from a pages-articles XML dump.

Pages are streamed with lxml; markup is stripped with mwparserfromhell. Only articles (namespace 0) count;
redirects, disambiguation pages, reference-type sections and sections shorter than `min_section_chars` are
skipped. The lead section pairs with the bare title."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from e5kit.data.dumps import clip_paragraphs, open_dump, paragraphs
from e5kit.data.pairs import Pair, clean_space
from e5kit.errors import InputFormatError

NAME = "wikipedia"
SKIP_SECTIONS = {"references", "external links", "see also", "notes", "further reading", "bibliography",
                 "sources", "footnotes", "citations", "notes and references", "works cited"}
_DISAMBIG = re.compile(r"\{\{\s*(disambiguation|disambig|dab|hndis|geodis|set index)\b", re.IGNORECASE)
_MEDIA = re.compile(r"^(file|image|category|media):", re.IGNORECASE)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def iter_pages(path: Path) -> Iterator[tuple[str, int, bool, str]]:
    """(title, namespace, is_redirect, wikitext) of every page, streamed."""
    from lxml import etree

    with open_dump(path) as fh:
        try:
            for _, el in etree.iterparse(fh, events=("end",), huge_tree=True):
                if _local(el.tag) != "page":
                    continue
                fields = {_local(c.tag): c for c in el}
                rev = fields.get("revision")
                text_el = None if rev is None else next((c for c in rev if _local(c.tag) == "text"), None)
                ns = int(fields["ns"].text or 0) if "ns" in fields else 0
                yield ((fields["title"].text or "") if "title" in fields else "", ns, "redirect" in fields,
                       (text_el.text or "") if text_el is not None else "")
                el.clear()
                while el.getprevious() is not None:
                    del el.getparent()[0]
        except etree.XMLSyntaxError as exc:
            raise InputFormatError(f"{path}: not a pages-articles XML dump ({exc})") from exc


def section_passages(wikitext: str) -> Iterator[tuple[str, str]]:
    """(section heading or "", plain text) of each section, lead first, subsections flattened."""
    import mwparserfromhell

    code = mwparserfromhell.parse(wikitext)
    for section in code.get_sections(flat=True, include_lead=True):
        headings = section.filter_headings(recursive=False)
        heading = clean_space(headings[0].title.strip_code()) if headings else ""
        for h in headings:
            section.remove(h)
        for link in section.filter_wikilinks():
            if _MEDIA.match(str(link.title).strip()):
                try:
                    section.remove(link)
                except ValueError:
                    pass
        for tag in section.filter_tags():
            if str(tag.tag).lower() in ("ref", "gallery", "table"):
                try:
                    section.remove(tag)
                except ValueError:
                    pass
        yield heading, paragraphs(section.strip_code(normalize=True, collapse=True))


def iter_file(path: str | os.PathLike[str], *, min_section_chars: int = 150,
              max_passage_chars: int = 2000) -> Iterator[Pair]:
    for title, ns, redirect, text in iter_pages(Path(path)):
        if ns != 0 or redirect or not title or "(disambiguation)" in title or _DISAMBIG.search(text):
            continue
        if text.lstrip().upper().startswith("#REDIRECT"):
            continue
        for heading, passage in section_passages(text):
            if heading.lower() in SKIP_SECTIONS or len(passage) < min_section_chars:
                continue
            query = f"{title} {heading}" if heading else title
            yield Pair(query, clip_paragraphs(passage, max_passage_chars), NAME,
                       {"title": title, "section": heading})
