"""A fixed mix of texts for exactness tests: short, long (over the limit), non-ASCII, empty, prefixed."""

from __future__ import annotations

import random


def mixed_texts(n: int = 220, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = ("protein cell water summit definition women eat food light dark the of and what how why "
             "Übermäßig café naïve 中文 字符 émigré résumé ĳ ñ 🙂").split()
    fixed = ["", " ", "\n\t", "query: how much protein should a female eat", "passage: As a general guideline",
             "query: ", "passage:", "  leading and trailing  ", "ALL CAPS TEXT", "tab\tseparated\twords"]
    out = list(fixed)
    while len(out) < n:
        k = rng.choice([1, 3, 8, 20, 60, 150, 400, 900])
        out.append(" ".join(rng.choice(words) for _ in range(k)))
    return out
