"""Debian package descriptions: (synopsis, long description) from deb822 stanzas.

Reads the apt lists' `*_i18n_Translation-en*` files (`Description-en`), `Packages` files or the output of
`apt-cache dumpavail` (`Description`). apt keeps its lists compressed (.lz4 here); those are read through
`apt-helper cat-file`, other files through `open_dump` (.gz/.xz/.bz2 or plain)."""

from __future__ import annotations

import glob
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from e5kit.data.apt_install import apt_install
from e5kit.data.dumps import open_dump_text
from e5kit.data.pairs import Pair, clean_space

NAME = "debian"
APT_LISTS = "/var/lib/apt/lists"
APT_HELPER = "/usr/lib/apt/apt-helper"
APT_PACKAGES: tuple[str, ...] = ()  # the lists come from `apt-get update -o Acquire::Languages=en`


def default_inputs(*, install: bool = False) -> list[Path]:
    """The English translation lists of apt; with `install`, fetch them when missing (root)."""
    found = sorted(glob.glob(f"{APT_LISTS}/*_i18n_Translation-en*"))
    if not found and install:
        apt_install([], update=True)
        found = sorted(glob.glob(f"{APT_LISTS}/*_i18n_Translation-en*"))
    return [Path(f) for f in found]


def _open(path: Path) -> tuple[IO[str], subprocess.Popen | None]:
    if path.suffix in (".lz4", ".zst") and os.path.exists(APT_HELPER):
        proc = subprocess.Popen([APT_HELPER, "cat-file", str(path)], stdout=subprocess.PIPE, text=True,
                                encoding="utf-8", errors="replace")
        return proc.stdout, proc  # type: ignore[return-value]
    return open_dump_text(path), None


def iter_stanzas(lines: IO[str]) -> Iterator[dict[str, str]]:
    """deb822 stanzas as {field: value}; continuation lines keep their leading space and newline."""
    stanza: dict[str, str] = {}
    last = None
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if stanza:
                yield stanza
            stanza, last = {}, None
        elif line[0] in " \t" and last is not None:
            stanza[last] += "\n" + line
        elif ":" in line:
            last, _, value = line.partition(":")
            stanza[last] = value.strip()
    if stanza:
        yield stanza


def split_description(value: str) -> tuple[str, str]:
    """(synopsis, long description) of a deb822 Description value; " ." lines are paragraph breaks."""
    first, _, rest = value.partition("\n")
    paras: list[list[str]] = [[]]
    for line in rest.split("\n"):
        body = line[1:] if line.startswith(" ") else line
        if body.strip() == ".":
            paras.append([])
        elif body.strip():
            paras[-1].append(body.strip())
    return clean_space(first), "\n\n".join(clean_space(" ".join(p)) for p in paras if p)


def iter_file(path: str | os.PathLike[str]) -> Iterator[Pair]:
    """Pairs of one list/dumpavail file; stanzas without a long description are skipped."""
    stream, proc = _open(Path(path))
    try:
        for st in iter_stanzas(stream):
            value = st.get("Description-en") or st.get("Description")
            if not value:
                continue
            synopsis, long = split_description(value)
            if synopsis and long:
                yield Pair(synopsis, long, NAME, {"package": st.get("Package", "")})
    finally:
        stream.close()
        if proc is not None:
            proc.wait()
