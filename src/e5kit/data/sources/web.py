"""Web pages and news: (page title, main text passage) from WARC files (HTML responses, boilerplate removed by
trafilatura) or WET files (Common Crawl's extracted text: the first line is taken as the title when short).
Records are read with warcio."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from e5kit.data.dumps import clip_paragraphs, paragraphs
from e5kit.data.pairs import Pair, clean_space

NAME = "web"


def _from_html(html: str, url: str | None) -> tuple[str, str]:
    import trafilatura

    doc = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False,
                                      include_tables=False, favor_precision=True)
    if doc is None:
        return "", ""
    get = doc.get if isinstance(doc, dict) else lambda k: getattr(doc, k, None)
    return clean_space(get("title") or ""), paragraphs(get("text") or "")


def _from_wet(text: str, max_title_chars: int) -> tuple[str, str]:
    first, _, rest = text.strip().partition("\n")
    first = clean_space(first)
    if not first or len(first) > max_title_chars:
        return "", ""
    return first, paragraphs(rest.replace("\n", "\n\n"))


def iter_file(path: str | os.PathLike[str], *, max_passage_chars: int = 2000, min_passage_chars: int = 200,
              max_title_chars: int = 200) -> Iterator[Pair]:
    from warcio.archiveiterator import ArchiveIterator

    with open(Path(path), "rb") as fh:
        for record in ArchiveIterator(fh):
            url = record.rec_headers.get_header("WARC-Target-URI")
            if record.rec_type == "response":
                ctype = record.http_headers.get_header("Content-Type", "") if record.http_headers else ""
                if "html" not in ctype.lower():
                    continue
                raw = record.content_stream().read()
                title, text = _from_html(raw.decode("utf-8", errors="replace"), url)
            elif record.rec_type == "conversion":
                title, text = _from_wet(record.content_stream().read().decode("utf-8", errors="replace"),
                                        max_title_chars)
            else:
                continue
            if title and len(title) <= max_title_chars and len(text) >= min_passage_chars:
                yield Pair(title, clip_paragraphs(text, max_passage_chars), NAME, {"url": url})
