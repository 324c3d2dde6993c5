"""WordNet: (lemma, gloss) from the `data.noun|verb|adj|adv` files of the Princeton WordNet database
(Debian package wordnet-base, /usr/share/wordnet). One pair per synset: its first lemma and its gloss
(definition and examples); all lemmas and the part of speech go into `meta`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from e5kit.data.apt_install import apt_install
from e5kit.data.dumps import open_dump_text
from e5kit.data.pairs import Pair, clean_space
from e5kit.errors import InputFormatError
from e5kit.io.bad_records import BadRecords

NAME = "wordnet"
WORDNET_DIR = Path("/usr/share/wordnet")
APT_PACKAGES = ("wordnet-base",)
_POS = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}


def default_inputs(*, install: bool = False) -> list[Path]:
    files = [WORDNET_DIR / f"data.{pos}" for pos in ("noun", "verb", "adj", "adv")]
    if not all(f.exists() for f in files) and install:
        apt_install(APT_PACKAGES)
    return [f for f in files if f.exists()]


def parse_line(line: str) -> tuple[list[str], str, str] | None:
    """(lemmas, part of speech, gloss) of one data-file line; None for the license header lines."""
    if line.startswith("  ") or not line.strip():
        return None
    head, sep, gloss = line.partition(" | ")
    fields = head.split()
    if not sep or len(fields) < 6:
        raise InputFormatError(f"not a WordNet data line: {line[:80]!r}")
    n_words = int(fields[3], 16)
    lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(n_words)]
    lemmas = [lemma.split("(")[0] for lemma in lemmas]  # adjective markers such as "(a)"
    return lemmas, _POS.get(fields[2], fields[2]), clean_space(gloss)


def iter_file(path: str | os.PathLike[str], *, bad: BadRecords | None = None) -> Iterator[Pair]:
    bad = bad or BadRecords.strict("input records")
    with open_dump_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                parsed = parse_line(line)
            except (ValueError, IndexError) as exc:
                bad.skip(f"{path}:{lineno}", str(exc))
                continue
            if parsed is None:  # a license header line
                continue
            bad.ok()
            if parsed[0] and parsed[2]:
                lemmas, pos, gloss = parsed
                yield Pair(lemmas[0], gloss, NAME, {"lemmas": lemmas, "pos": pos})
