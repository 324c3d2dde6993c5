"""`pair_stats`: what a folder of pairs holds: counts per source, length distributions (PNG histograms),
the filter reports found beside the shards, and random sample pairs. One streaming pass; the lengths kept for
histograms are a bounded reservoir sample per source."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np

from e5kit.data.shards import iter_pairs

MAX_LENGTHS = 200_000  # per source; enough for smooth histograms and medians


class _Reservoir:
    def __init__(self, size: int, rng: random.Random) -> None:
        self.size, self.rng, self.items, self.seen = size, rng, [], 0

    def add(self, item: Any) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
        else:
            j = self.rng.randrange(self.seen)
            if j < self.size:
                self.items[j] = item


def pair_stats(src: str | os.PathLike[str], *, out: str | os.PathLike[str] | None = None, samples: int = 3,
               seed: int = 0, plot: bool = True) -> dict[str, Any]:
    """Count and describe the pairs under `src`; writes stats.json and lengths.png into `out` (default
    `src/stats`) and returns the stats (with `written`: the files made)."""
    if not isinstance(samples, int) or samples < 0:
        raise ValueError(f"samples must be a non-negative int, got {samples!r}")
    rng = random.Random(seed)
    lengths: dict[str, _Reservoir] = {}
    picks: dict[str, _Reservoir] = {}
    counts: dict[str, int] = {}
    for pair in iter_pairs(src):
        s = pair.source
        if s not in counts:
            counts[s] = 0
            lengths[s] = _Reservoir(MAX_LENGTHS, rng)
            picks[s] = _Reservoir(samples, rng)
        counts[s] += 1
        lengths[s].add((len(pair.query), len(pair.passage)))
        if samples:
            picks[s].add({"query": pair.query[:300], "passage": pair.passage[:500]})
    sources = {}
    for s in sorted(counts):
        arr = np.array(lengths[s].items, dtype=np.int64).reshape(-1, 2)
        sources[s] = {"pairs": counts[s],
                      "query_chars_median": int(np.median(arr[:, 0])),
                      "passage_chars_median": int(np.median(arr[:, 1])),
                      "query_chars_p95": int(np.percentile(arr[:, 0], 95)),
                      "passage_chars_p95": int(np.percentile(arr[:, 1], 95)), "samples": picks[s].items}
    folder = Path(src) if Path(src).is_dir() else Path(src).parent
    reports = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("report-*.json"))}
    stats: dict[str, Any] = {"pairs": sum(counts.values()), "sources": sources,
                             "filters": {name: _brief(r) for name, r in reports.items()}}
    out_dir = Path(out) if out else folder / "stats"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [str(out_dir / "stats.json")]
    if plot and counts:
        written.append(str(_plot({s: np.array(r.items).reshape(-1, 2) for s, r in lengths.items()},
                                 out_dir / "lengths.png")))
    stats["written"] = written
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return stats


def _brief(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("input", "kept", "kept_fraction", "steps", "by_source")
    return {k: report[k] for k in keys if k in report}


def _plot(lengths: dict[str, np.ndarray], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    top = max(int(a.max()) for a in lengths.values() if a.size) + 2
    bins = np.logspace(0, np.log10(max(top, 10)), 50)
    for col, role in enumerate(("query", "passage")):
        ax = axes[col]
        for source, arr in sorted(lengths.items()):
            if arr.size:
                ax.hist(arr[:, col] + 1, bins=bins, histtype="step", label=source,
                        weights=np.full(len(arr), 1.0 / len(arr)))  # share of the source's pairs per bin
        ax.set_xscale("log")
        ax.set_xlabel(f"{role} length (characters)")
        ax.set_ylabel("fraction of pairs")
        ax.set_title(f"{role} lengths by source")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
