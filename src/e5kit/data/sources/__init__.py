"""Pair builders, one module per source, listed once in SOURCES (name -> description). Each module defines
`NAME` (the pairs' source field) and either
`iter_file(path, **options)` (pairs of one input file, so a build resumes and splits per file) or
`iter_inputs(paths, **options)` (sources whose pairs join several files). Local corpora also define
`default_inputs()` and `APT_PACKAGES` so they can find (and install, e5kit.data.apt_install) their
files; `expand_folder(folder)`, where defined, picks a folder's input files. A builder that reads records
(JSON lines, data lines) takes the keyword `bad`, the bad-record policy of e5kit.io.bad_records: it reports each
record with `bad.ok()` or `bad.skip(where, reason)` (None: stop at the first malformed record). Every other
keyword-only parameter is a user option (`--option KEY=VALUE`), its default's type checked."""

from __future__ import annotations

import importlib
from types import ModuleType

SOURCES = {
    "stackexchange": "Posts.xml of a StackExchange dump: (question title + body, best answer)",
    "wikipedia": "pages-articles XML: (title + section title, section text)",
    "reddit": "Pushshift JSON lines of submissions and comments: (post title + text, top comment)",
    "papers": "arXiv metadata snapshot or S2ORC-style JSON lines: (title, abstract)",
    "web": "WARC (HTML, boilerplate removed) or WET files: (page title, main text)",
    "debian": "Debian package descriptions (Translation-en / Packages / apt-cache dumpavail): (synopsis, description)",
    "wordnet": "WordNet data.* files (wordnet-base): (lemma, gloss)",
    "pydocs": "Python documentation HTML (python3-doc): (page + section title, section text)",
    "manpages": "man pages (roff source under /usr/share/man): (NAME line, DESCRIPTION)",
    # labeled data (fine-tuning)
    "beir": "BEIR folder with training qrels (corpus, queries, qrels/<split>.tsv): (query, judged document)",
    "msmarco": "MS MARCO passage files (collection, queries, qrels; or text triples): (query, judged passage)",
    "dpr": "DPR-style JSON (NQ, TriviaQA): (question, first positive context) + hard negative contexts",
    "nli": "SNLI / MultiNLI JSON Lines: (premise, entailed hypothesis) + contradictions as negatives",
}


def get_source(name: str) -> ModuleType:
    """The builder module of source `name`; unknown names raise ValueError listing the known ones."""
    if name not in SOURCES:
        raise ValueError(f"unknown pair source {name!r}; choose one of {', '.join(SOURCES)}")
    return importlib.import_module(f"e5kit.data.sources.{name}")
