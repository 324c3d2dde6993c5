"""Encoding benchmark (issue 7): the same run as `e5kit bench`, kept here beside the other benchmarks.

sentence-transformers encode (fp32, its defaults, batch 32) and every e5kit mode on the same
SciFact passages, alternating; two sizes: all-MiniLM-L6-v2 (real weights, 256 tokens) and a
random BERT-base (e5-base shape, 512 tokens). Arguments are those of `e5kit bench`, e.g.

    .venv/bin/python benchmarks/bench_encode.py --data ../shared/data --quality --out /tmp/bench
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from e5kit.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
