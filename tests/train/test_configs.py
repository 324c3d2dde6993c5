"""The shipped presets in configs/ load through the train config loader and hold the settings their docs claim."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from e5kit.train.config import Distill, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_preset_loads_and_validates(path):
    """Each preset, with the pieces its header says to give on the command line, passes validate()."""
    cfg = load_config(path, ["init=some/checkpoint", "sources=[{name: s, paths: [x.jsonl]}]"]).validate()
    assert cfg.steps >= 1 and cfg.batch_size >= 1


def test_e5_base_finetune_is_the_published_recipe():
    """SimLM's distillation script (E5's fine-tuning stage): 1 positive + 23 negatives, KL + 0.2 x InfoNCE,
    temperature 0.02, lr 3e-5, 6 epochs, query/passage lengths 32/144."""
    cfg = load_config(CONFIGS / "e5-base-finetune.yaml").validate()
    assert cfg.init == "intfloat/e5-base-unsupervised"
    assert cfg.hard_negatives == 23
    assert cfg.distill == Distill(alpha=0.2, teacher_temperature=1.0)
    assert cfg.temperature == 0.02
    assert cfg.lr == 3e-5 and cfg.warmup_steps == 1000
    assert (cfg.query_max_length, cfg.max_length) == (32, 144)
    assert (cfg.query_prefix, cfg.passage_prefix) == ("query: ", "passage: ")
    assert cfg.steps == math.ceil(6 * 502_939 / cfg.batch_size)  # 6 epochs of MS MARCO's training queries
    assert cfg.symmetric is False


def test_scifact_preset_matches_its_script():
    """benchmarks/finetune_scifact.sh evaluates the checkpoint of the config's last step; the two must agree."""
    cfg = load_config(CONFIGS / "scifact-minilm-finetune.yaml")
    script = (CONFIGS.parent / "benchmarks" / "finetune_scifact.sh").read_text(encoding="utf-8")
    assert f"LAST=step-{cfg.steps:07d}" in script
    assert cfg.save_every == cfg.steps and cfg.hard_negatives == 0  # (b) sets hard_negatives on the command line
    assert cfg.steps == math.ceil(919 / cfg.batch_size)  # 1 pass over SciFact's 919 training judgements
    assert (cfg.query_prefix, cfg.passage_prefix) == ("", "")  # all-MiniLM-L6-v2 was trained without prefixes


def test_distill_preset_needs_its_negatives():
    """Overriding the recipe's negatives away is refused, not silently trained without the teacher."""
    from e5kit.train.config import ConfigError

    with pytest.raises(ConfigError, match="distill needs hard_negatives"):
        load_config(CONFIGS / "e5-base-finetune.yaml", ["hard_negatives=0"]).validate()
