"""Search a corpus file directly (`e5kit search`): its embeddings are an index cached beside it.

The cache is an ordinary index folder (same build code as `e5kit index build`) under
CORPUS_DIR/.e5kit-cache/<key>/, or under the user cache dir (E5KIT_CACHE, else
$XDG_CACHE_HOME/e5kit/search, else ~/.cache/e5kit/search) when the corpus folder is not writable.
The key hashes the model's weights fingerprint, the corpus files' bytes, and every setting that
changes the vectors (prefix, max length, normalization, precision), so a second search with the
same inputs encodes only the queries, and any change gets its own entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e5kit.index.build import build_index
from e5kit.index.corpus import BEIR_FIELDS, CorpusFields, files_digest, resolve_corpus
from e5kit.index.layout import IndexFormatError, IndexLayout
from e5kit.index.store import DenseIndex, Hit
from e5kit.io.records import TextRecord
from e5kit.options import with_options

CACHE_DIR_NAME = ".e5kit-cache"


def cache_key(model: Any, files: Sequence[Path], *, normalize: bool, fields: CorpusFields,
              skip_empty: bool = False) -> str:
    """Hex key of (model weights, corpus bytes, settings that change the embeddings or the documents)."""
    spec = {
        "model": model.fingerprint,
        "corpus": files_digest(files),
        "prefix": model.policy.prefix_for("passage"),
        "max_seq_length": model.max_seq_length,
        "normalize": normalize,
        "precision": model.precision,
        "fields": fields.as_dict(),
        "layout": "e5kit-index/1",
        **({"skip_empty": True} if skip_empty else {}),  # absent when False: older cache entries keep their key
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]


def _writable(folder: Path) -> bool:
    """Whether `folder` could be written (made, if missing) — asked without making it."""
    existing = next((p for p in (folder, *folder.absolute().parents) if p.exists()), None)
    return existing is not None and existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)


def cache_root(files: Sequence[Path], cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where cached indexes go: `cache_dir`, else beside the corpus, else the user cache dir."""
    if cache_dir is not None:
        return Path(cache_dir)
    beside = files[0].resolve().parent / CACHE_DIR_NAME
    if _writable(beside):
        return beside
    env = os.environ.get("E5KIT_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "e5kit"
    return base / "search"


def check_corpus(corpus: Any, cache_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The corpus files, once the files and the cache folder are known to be usable: call it before loading a
    model, so a wrong path fails at once."""
    files = resolve_corpus(corpus)
    root = cache_root(files, cache_dir)
    if not _writable(root):
        raise IndexFormatError(f"the cache folder {root} cannot be written; pass a writable --cache-dir (cache_dir=)")
    return files


@dataclass
class CorpusSearch:
    """Results of `search_corpus`: hits per query, the index, whether this call encoded the corpus."""

    hits: list[list[Hit]]
    index: DenseIndex
    encoded: bool

    def hit_texts(self) -> dict[str, str]:
        """Document id -> text of every hit, read back from the corpus files."""
        records = fetch_records(self.index, {h.row for ranked in self.hits for h in ranked})
        return {rec.id: rec.text for rec in records.values()}

    def summary(self) -> str:
        how = "encoded" if self.encoded else "cached embeddings for"
        return f"{how} {len(self.index)} documents (index {self.index.folder})"


@dataclass
class CorpusSearchSettings:
    """How `search_corpus` reads and caches a corpus (fields of BuildSettings it passes on, and where to cache)."""

    cache_dir: str | os.PathLike[str] | None = None  # default: beside the corpus, else the user cache dir
    normalize: bool = True
    fields: CorpusFields = BEIR_FIELDS
    skip_empty: bool = False  # leave out records with empty text (else an error naming them)
    show_progress: bool | None = None
    instruction: str | None = None  # instruct models: the task description in the query prompt (not cached)


def corpus_index(corpus: Any, model: Any, settings: CorpusSearchSettings | None = None,
                 **options: Any) -> tuple[DenseIndex, bool]:
    """The cached index of a corpus for this model and settings, built (or finished) when missing."""
    o = with_options(CorpusSearchSettings, settings, options)
    files = check_corpus(corpus, o.cache_dir)
    key = cache_key(model, files, normalize=o.normalize, fields=o.fields, skip_empty=o.skip_empty)
    folder = cache_root(files, o.cache_dir) / key
    layout = IndexLayout(folder)
    if layout.exists() and layout.read_manifest().get("complete"):
        return DenseIndex.open(folder), False
    build_index(files, folder, model=model, normalize=o.normalize, fields=o.fields, skip_empty=o.skip_empty,
                show_progress=o.show_progress)
    return DenseIndex.open(folder), True


def search_corpus(corpus: Any, queries: Sequence[str], *, model: Any, k: int = 10,
                  settings: CorpusSearchSettings | None = None, **options: Any) -> CorpusSearch:
    """Exact cosine search of `queries` (query prompt) over a corpus (passage prompt), embeddings cached.

    `settings` (or its fields as keywords: cache_dir, normalize, fields, skip_empty, show_progress) say how."""
    o = with_options(CorpusSearchSettings, settings, options)
    if isinstance(queries, str):
        queries = [queries]
    if not queries:
        raise ValueError("give at least one query")
    index, encoded = corpus_index(corpus, model, o)
    return CorpusSearch(index.search(model, queries, k, show_progress=o.show_progress, instruction=o.instruction),
                        index, encoded)


def fetch_records(index: DenseIndex, rows: set[int]) -> dict[int, TextRecord]:
    """The corpus records at some rows, read back from the index's source files in one streaming pass."""
    found: dict[int, TextRecord] = {}
    if not rows or not all(p.is_file() for p in index.corpus_files):
        return found
    last = max(rows)
    for row, rec in enumerate(index.corpus_records()):
        if row in rows:
            found[row] = rec
        if row >= last:
            break
    return found
