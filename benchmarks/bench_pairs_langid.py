"""Language identification for the English filter: langid.py vs lingua, side by side in one run.

Labelled texts come from a raw local build: man pages carry the language of their folder (/usr/share/man/<lang>/),
WordNet glosses are English (and short, the hard case). Reports, per backend, accuracy of the keep-English
decision at probability >= 0.5, English recall (kept English / English), non-English rejection, and ms per text.

    .venv/bin/python benchmarks/bench_pairs_langid.py --raw /work/pairs/local/raw --n 400
"""

from __future__ import annotations

import argparse
import random
import time

from threadpoolctl import threadpool_limits

from e5kit.data import iter_pairs
from e5kit.data.filters import make_english_scorer


def labelled(raw: str, n: int, seed: int) -> dict[str, list[tuple[str, bool]]]:
    rng = random.Random(seed)
    man = list(iter_pairs(f"{raw}/manpages"))
    en = [p for p in man if p.meta.get("lang") == "en"]
    other = [p for p in man if p.meta.get("lang") != "en"]
    wn = list(iter_pairs(f"{raw}/wordnet"))
    text = lambda p: f"{p.query}\n{p.passage[:500]}"  # noqa: E731 - what LanguageFilter scores
    return {"man pages, English": [(text(p), True) for p in rng.sample(en, n)],
            "man pages, translated": [(text(p), False) for p in rng.sample(other, n)],
            "WordNet glosses (short)": [(text(p), True) for p in rng.sample(wn, n)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", default="/work/pairs/local/raw")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sets = labelled(args.raw, args.n, args.seed)
    print(f"{'backend':8} {'set':26} {'correct':>8} {'ms/text':>8}")
    for backend in ("langid", "lingua"):
        t0 = time.perf_counter()
        score = make_english_scorer(backend)
        score("warm up the model")
        load = time.perf_counter() - t0
        total, right, seconds = 0, 0, 0.0
        for name, items in sets.items():
            with threadpool_limits(1):
                t = time.perf_counter()
                ok = sum((score(text) >= 0.5) == is_en for text, is_en in items)
                dt = time.perf_counter() - t
            total, right, seconds = total + len(items), right + ok, seconds + dt
            print(f"{backend:8} {name:26} {ok / len(items):8.1%} {dt / len(items) * 1e3:8.2f}")
        print(f"{backend:8} {'all (load ' + format(load, '.1f') + ' s)':26} {right / total:8.1%} "
              f"{seconds / total * 1e3:8.2f}")


if __name__ == "__main__":
    main()
