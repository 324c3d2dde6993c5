"""BM25 lexical search (Lucene scoring, as Anserini's BEIR baseline) over string ids, via bm25s.

Why bm25s: measured on SciFact (docs/bench-eval.md) it matches Anserini's flat BM25 nDCG@10 within
0.01 with the same analyzer shape (lower-case, Lucene's 33 English stopwords, Porter stemming) and
indexes + searches the corpus in seconds, where rank_bm25 scores every document in Python per query.
Its index is a sparse matrix of precomputed term scores, saved as plain .npy/.json (no pickle).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from e5kit.io.atomic import atomic_write_json
from e5kit.options import positive_int

FORMAT_VERSION = 2  # 1 indexed the empty term (a lone "s" stems to ""); such an index is refused
META_FILE = "e5kit_bm25.json"
IDS_FILE = "ids.json"
DEFAULT_STEMMER = "porter"  # Lucene's EnglishAnalyzer uses the original Porter stemmer
TOKEN_PATTERN = r"(?u)\b\w+\b"  # every word token, one character included, as Lucene's StandardTokenizer


def _bm25s():
    import logging

    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG and logs each build to stderr
    return bm25s


def _check_texts(values: object, what: str) -> list[str]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{what} must be a sequence of str, got {type(values).__name__}")
    out = list(values)
    for i, v in enumerate(out):
        if not isinstance(v, str):
            raise TypeError(f"{what}[{i}] is {type(v).__name__}, expected str")
    return out


def check_params(k1: object, b: object) -> tuple[float, float]:
    """(k1, b) as floats; k1 >= 0 and 0 <= b <= 1, else a ValueError naming the value and the range."""
    for name, val, high in (("k1", k1, None), ("b", b, 1.0)):
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not np.isfinite(val) or val < 0 or (
                high is not None and val > high):
            allowed = "a finite number >= 0" if high is None else f"in [0, {high:g}]"
            raise ValueError(f"{name} must be {allowed}, got {val!r}")
    return float(k1), float(b)  # type: ignore[arg-type]


class Analyzer:
    """Text to index terms: lower-case, word tokens, stopwords out, stemmed; a term is never empty.

    Porter stems a lone "s" (from "Alzheimer's" split at the apostrophe) to the empty string; Lucene's
    possessive filter drops it, and so does this analyzer. An empty term would match every such
    document, and bm25s also maps a query without known terms to it.
    """

    def __init__(self, stemmer: str | None = DEFAULT_STEMMER, stopwords: str | None = "en") -> None:
        import re

        from bm25s.stopwords import STOPWORDS_EN

        if stopwords not in (None, "en"):
            raise ValueError(f"stopwords must be 'en' (Lucene's English list) or None, got {stopwords!r}")
        self._stem = None
        if stemmer:
            import Stemmer  # PyStemmer

            if stemmer not in Stemmer.algorithms():
                allowed = sorted(Stemmer.algorithms())
                raise ValueError(f"unknown stemmer {stemmer!r}; choose one of {allowed} or None")
            self._stem = Stemmer.Stemmer(stemmer).stemWord
        self._stop = frozenset(STOPWORDS_EN) if stopwords else frozenset()
        self._split = re.compile(TOKEN_PATTERN).findall
        self._cache: dict[str, str] = {}

    def terms(self, text: str) -> list[str]:
        out = []
        for word in self._split(text.lower()):
            if word in self._stop:
                continue
            term = self._cache.get(word)
            if term is None:
                term = self._stem(word) if self._stem else word
                if len(self._cache) < 1_000_000:  # bounded: a server sees endless new words
                    self._cache[word] = term
            if term:
                out.append(term)
        return out


class BM25Index:
    """A BM25 index over documents with string ids: build once, search many queries, save/load.

    Scores are Lucene's BM25 (idf = log(1 + (N - df + 0.5) / (df + 0.5))); k1=0.9, b=0.4 are
    Anserini's BEIR defaults. Text analysis: see Analyzer. A hit is a document holding at least one
    query term, so a query without any indexed term has no hits.
    """

    def __init__(self, retriever, analyzer: Analyzer, ids: list[str], params: dict) -> None:
        self._retriever = retriever
        self._analyzer = analyzer
        self.ids = ids
        self.params = params

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"BM25Index(docs={len(self.ids)}, k1={self.params['k1']}, b={self.params['b']})"

    @classmethod
    def build(
        cls,
        ids: Sequence[str],
        texts: Sequence[str],
        *,
        k1: float = 0.9,
        b: float = 0.4,
        stemmer: str | None = DEFAULT_STEMMER,
        stopwords: str | None = "en",
        show_progress: bool | None = None,
    ) -> BM25Index:
        """Index `texts` (one per id). Ids must be unique strings; an empty corpus is an error."""
        k1, b = check_params(k1, b)
        ids, texts = _check_texts(ids, "ids"), _check_texts(texts, "texts")
        if len(ids) != len(texts):
            raise ValueError(f"ids and texts differ in length: {len(ids)} vs {len(texts)}")
        if not ids:
            raise ValueError("cannot build a BM25 index over an empty corpus")
        if len(set(ids)) != len(ids):
            from collections import Counter

            dup = next(i for i, n in Counter(ids).items() if n > 1)
            raise ValueError(f"document ids must be unique; {dup!r} occurs more than once")
        from tqdm.auto import tqdm

        analyzer = Analyzer(stemmer, stopwords)
        vocab: dict[str, int] = {}
        doc_terms = [
            [vocab.setdefault(t, len(vocab)) for t in analyzer.terms(text)]
            for text in tqdm(texts, desc="bm25 analyze", unit="doc", disable=show_progress is False, leave=False)
        ]
        if not vocab:
            raise ValueError("no document has an indexable term (all empty, stopwords or punctuation)")
        retriever = _bm25s().BM25(k1=k1, b=b, method="lucene")
        retriever.index((doc_terms, vocab), create_empty_token=False, show_progress=show_progress is not False)
        params = {"k1": k1, "b": b, "stemmer": stemmer, "stopwords": stopwords, "method": "lucene"}
        return cls(retriever, analyzer, ids, params)

    def search(
        self, queries: Sequence[str], k: int, *, show_progress: bool | None = None
    ) -> tuple[list[np.ndarray], list[list[str]]]:
        """Per query, the top-k hits best first: (scores, one float32 array per query; ids, one list per query).

        A hit holds at least one query term (Lucene's idf is positive, so its score is > 0); a query
        without any indexed term ("", stopwords, unknown words) has none. Ties go to the earlier document.
        """
        queries = _check_texts(queries, "queries")
        positive_int("k", k)
        from tqdm.auto import tqdm

        vocab = self._retriever.vocab_dict
        scores: list[np.ndarray] = []
        out_ids: list[list[str]] = []
        bar = tqdm(queries, desc="bm25 search", unit="q", disable=show_progress is False, leave=False)
        for query in bar:
            terms = [vocab[t] for t in self._analyzer.terms(query) if t in vocab]
            if not terms:
                scores.append(np.zeros(0, dtype=np.float32))
                out_ids.append([])
                continue
            s = np.asarray(self._retriever.get_scores_from_ids(terms), dtype=np.float32)
            order = _top(s, k)
            order = order[s[order] > 0]
            scores.append(s[order])
            out_ids.append([self.ids[j] for j in order])
        return scores, out_ids

    def score_ids(self, query: str, ids: Sequence[str]) -> np.ndarray:
        """BM25 scores (float32) of `query` for the documents `ids`, in that order; an unknown id raises KeyError."""
        if not hasattr(self, "_position"):
            self._position = {doc: i for i, doc in enumerate(self.ids)}
        rows = [self._position[i] for i in ids]
        (toks,) = self._tokenizer.tokenize([query], update_vocab=False, show_progress=False, return_as="ids")
        if not toks or not rows:
            return np.zeros(len(rows), dtype=np.float32)
        return np.asarray(self._retriever.get_scores_from_ids(list(toks)), dtype=np.float32)[rows]

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the index (bm25s arrays and vocabulary, ids, parameters) into `folder`, replacing it whole:
        it is written beside it first, so a crash leaves the old index or the new one."""
        folder = Path(folder)
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)  # a plain mkdir: the folder and its files follow the umask
        try:
            self._retriever.save(str(tmp), show_progress=False)
            atomic_write_json(tmp / IDS_FILE, self.ids, indent=None)
            meta = {"format": "e5kit-bm25", "version": FORMAT_VERSION, "docs": len(self.ids), **self.params}
            atomic_write_json(tmp / META_FILE, meta)
            if folder.exists():
                folder.rename(old)
            tmp.rename(folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> BM25Index:
        """Read an index written by `save`; a folder without one raises FileNotFoundError."""
        folder = Path(folder)
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{folder} holds no e5kit BM25 index (missing {META_FILE})")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != "e5kit-bm25" or meta.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{meta_path}: unsupported BM25 index format {meta.get('format')!r} "
                f"version {meta.get('version')!r} (expected e5kit-bm25 v{FORMAT_VERSION}); rebuild it "
                "(`e5kit index bm25 INDEX --overwrite`; version 1 matched documents to queries without any term)"
            )
        retriever = _bm25s().BM25.load(str(folder), show_progress=False)
        ids = json.loads((folder / IDS_FILE).read_text(encoding="utf-8"))
        params = {key: meta[key] for key in ("k1", "b", "stemmer", "stopwords", "method")}
        return cls(retriever, Analyzer(meta["stemmer"], meta["stopwords"]), ids, params)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first, ties to the smaller index."""
    if k >= len(scores):
        return np.lexsort((np.arange(len(scores)), -scores))
    part = np.argpartition(-scores, k - 1)[:k]
    kth = scores[part].min()
    cand = np.flatnonzero(scores >= kth)  # every tie at the boundary, so the tie-break is exact
    order = np.lexsort((cand, -scores[cand]))
    return cand[order[:k]]
