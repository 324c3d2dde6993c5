"""BM25 lexical search (Lucene scoring, as Anserini's BEIR baseline) over string ids, via bm25s.

Why bm25s: measured on SciFact (docs/bench-eval.md) it matches Anserini's flat BM25 nDCG@10 within
0.01 with the same analyzer shape (lower-case, Lucene's 33 English stopwords, Porter stemming) and
indexes + searches the corpus in seconds, where rank_bm25 scores every document in Python per query.
Its index is a sparse matrix of precomputed term scores, saved as plain .npy/.json (no pickle).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
META_FILE = "e5kit_bm25.json"
IDS_FILE = "ids.json"
DEFAULT_STEMMER = "porter"  # Lucene's EnglishAnalyzer uses the original Porter stemmer
TOKEN_PATTERN = r"(?u)\b\w+\b"  # every word token, one character included, as Lucene's StandardTokenizer


def _check_texts(values: object, what: str) -> list[str]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{what} must be a sequence of str, got {type(values).__name__}")
    out = list(values)
    for i, v in enumerate(out):
        if not isinstance(v, str):
            raise TypeError(f"{what}[{i}] is {type(v).__name__}, expected str")
    return out


def _make_tokenizer(stemmer: str | None, stopwords: str | None):  # -> bm25s.tokenization.Tokenizer
    import bm25s

    stem = None
    if stemmer:
        import Stemmer  # PyStemmer

        if stemmer not in Stemmer.algorithms():
            allowed = sorted(Stemmer.algorithms())
            raise ValueError(f"unknown stemmer {stemmer!r}; choose one of {allowed} or None")
        stem = Stemmer.Stemmer(stemmer)
    return bm25s.tokenization.Tokenizer(
        lower=True, splitter=TOKEN_PATTERN, stopwords=stopwords or [], stemmer=stem
    )


class BM25Index:
    """A BM25 index over documents with string ids: build once, search many queries, save/load.

    Scores are Lucene's BM25 (idf = log(1 + (N - df + 0.5) / (df + 0.5))); k1=0.9, b=0.4 are
    Anserini's BEIR defaults. Text analysis: lower-case, word tokens (\\w+), Lucene's
    English stopwords, Porter stemmer.
    """

    def __init__(self, retriever, tokenizer, ids: list[str], params: dict) -> None:
        self._retriever = retriever
        self._tokenizer = tokenizer
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
        import bm25s

        ids, texts = _check_texts(ids, "ids"), _check_texts(texts, "texts")
        if len(ids) != len(texts):
            raise ValueError(f"ids and texts differ in length: {len(ids)} vs {len(texts)}")
        if not ids:
            raise ValueError("cannot build a BM25 index over an empty corpus")
        if len(set(ids)) != len(ids):
            from collections import Counter

            dup = next(i for i, n in Counter(ids).items() if n > 1)
            raise ValueError(f"document ids must be unique; {dup!r} occurs more than once")
        for name, val in (("k1", k1), ("b", b)):
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not np.isfinite(val) or val < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {val!r}")
        if b > 1:
            raise ValueError(f"b must be in [0, 1], got {b!r}")
        progress = show_progress is not False
        tokenizer = _make_tokenizer(stemmer, stopwords)
        tokens = tokenizer.tokenize(texts, update_vocab=True, show_progress=progress, return_as="tuple")
        retriever = bm25s.BM25(k1=float(k1), b=float(b), method="lucene")
        retriever.index(tokens, show_progress=progress)
        params = {
            "k1": float(k1),
            "b": float(b),
            "stemmer": stemmer,
            "stopwords": stopwords,
            "method": "lucene",
        }
        return cls(retriever, tokenizer, ids, params)

    def search(
        self, queries: Sequence[str], k: int, *, show_progress: bool | None = None
    ) -> tuple[np.ndarray, list[list[str]]]:
        """Top-k (scores (q, k') float32 best first, ids) per query, k' = min(k, len(index)).

        Ties are broken by document position (earlier first). A query with no indexed term scores
        0 for every document.
        """
        queries = _check_texts(queries, "queries")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        kk = min(k, len(self.ids))
        if not queries:
            return np.zeros((0, kk), dtype=np.float32), []
        from tqdm.auto import tqdm

        # Query tokens map to the corpus vocabulary (unknown terms are dropped), whose ids the index uses.
        q_ids = self._tokenizer.tokenize(queries, update_vocab=False, show_progress=False, return_as="ids")
        scores = np.zeros((len(queries), kk), dtype=np.float32)
        out_ids: list[list[str]] = []
        bar = tqdm(q_ids, desc="bm25 search", unit="q", disable=show_progress is False, leave=False)
        for qi, toks in enumerate(bar):
            s = (
                np.asarray(self._retriever.get_scores_from_ids(list(toks)), dtype=np.float32)
                if toks
                else np.zeros(len(self.ids), dtype=np.float32)
            )
            order = _top(s, kk)
            scores[qi] = s[order]
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
        """Write the index (bm25s arrays, tokenizer vocab, ids, parameters) into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._retriever.save(str(folder), show_progress=False)
        self._tokenizer.save_vocab(str(folder))
        (folder / IDS_FILE).write_text(json.dumps(self.ids, ensure_ascii=False), encoding="utf-8")
        meta = {"format": "e5kit-bm25", "version": FORMAT_VERSION, "docs": len(self.ids), **self.params}
        (folder / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> BM25Index:
        """Read an index written by `save`; a folder without one raises FileNotFoundError."""
        import bm25s

        folder = Path(folder)
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{folder} holds no e5kit BM25 index (missing {META_FILE})")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != "e5kit-bm25" or meta.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{meta_path}: unsupported BM25 index format {meta.get('format')!r} "
                f"version {meta.get('version')!r} (expected e5kit-bm25 v{FORMAT_VERSION})"
            )
        retriever = bm25s.BM25.load(str(folder), show_progress=False)
        tokenizer = _make_tokenizer(meta["stemmer"], meta["stopwords"])
        tokenizer.load_vocab(str(folder))
        ids = json.loads((folder / IDS_FILE).read_text(encoding="utf-8"))
        params = {key: meta[key] for key in ("k1", "b", "stemmer", "stopwords", "method")}
        return cls(retriever, tokenizer, ids, params)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first, ties to the smaller index."""
    if k >= len(scores):
        return np.lexsort((np.arange(len(scores)), -scores))
    part = np.argpartition(-scores, k - 1)[:k]
    kth = scores[part].min()
    cand = np.flatnonzero(scores >= kth)  # every tie at the boundary, so the tie-break is exact
    order = np.lexsort((cand, -scores[cand]))
    return cand[order[:k]]
