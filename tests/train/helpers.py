"""Helpers for training tests: synthetic pair shards over the tiny vocabulary, and small configs."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = ("the a of and to in is was for on with what how why protein cell cells water fire earth light dark "
         "big small run ran eat food summit definition women").split()


def write_pairs(path: Path, n: int, *, seed: int = 0, source: str | None = None, negatives: int = 0,
                bad_lines: int = 0) -> Path:
    """`n` synthetic pairs (a query's words all occur in its passage) plus `bad_lines` malformed lines."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = rng.sample(WORDS, 5)
        rec = {"query": " ".join(words[:2]), "passage": " ".join(words + rng.sample(WORDS, 3))}
        if source:
            rec["source"] = source
        if negatives:
            rec["negatives"] = [" ".join(rng.sample(WORDS, 6)) for _ in range(negatives)]
        lines.append(json.dumps(rec))
    for i in range(bad_lines):
        lines.insert(rng.randrange(len(lines) + 1), "{not json" if i % 2 else json.dumps({"query": 3}))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        import gzip

        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
    else:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path



def tiny_config(init: Path, pairs: Path, out: Path, **overrides):
    """A TrainConfig for a few fast steps on the tiny model (fp32, no dropout: deterministic)."""
    from e5kit.train.config import Source, TrainConfig

    values = dict(output_dir=str(out), init=str(init), sources=[Source("s", [str(pairs)], 1.0)], batch_size=8,
                  chunk_size=3, steps=6, lr=1e-3, warmup_steps=2, save_every=3, keep_last=2, shuffle_buffer=32,
                  max_length=32, dropout=False, show_progress=False, device="cpu")
    values.update(overrides)
    return TrainConfig(**values)


def make_tiny_model(root: Path, *, name: str = "tiny-train", seed: int = 0) -> Path:
    """The shared tiny random BERT (tests/conftest.py) in its own folder, for runs that write beside it."""
    from tests.conftest import make_tiny_bert

    return make_tiny_bert(root, name=name, seed=seed)
