import json

import pytest

from e5kit.train.config import ConfigError, TrainConfig, load_config


def _yaml(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_yaml_then_overrides(tmp_path):
    (tmp_path / "pairs.jsonl").write_text("")
    cfg = load_config(_yaml(tmp_path, "init: m\nsteps: 5\nsources:\n  - {name: a, paths: [pairs.jsonl], weight: 2}\n"
                                      "fresh: {layers: 2}\n"),
                      ["steps=7", "symmetric=true", "fresh.hidden=64", "temperature=0.05", "query_prefix=query: ",
                       "eval_tasks=scifact,stsbenchmark"])
    assert cfg.steps == 7 and cfg.symmetric is True and cfg.temperature == 0.05
    assert cfg.fresh.layers == 2 and cfg.fresh.hidden == 64
    assert cfg.query_prefix == "query: " and cfg.eval_tasks == ["scifact", "stsbenchmark"]
    assert cfg.sources[0].weight == 2.0 and cfg.sources[0].paths == [str(tmp_path / "pairs.jsonl")]
    assert json.loads(json.dumps(cfg.to_dict()))["fresh"]["hidden"] == 64
    cfg.validate()


def test_sources_by_flag():
    cfg = load_config(None, ["sources=[{name: a, paths: [x.jsonl]}]", "init=m"])
    assert cfg.sources[0].paths == ["x.jsonl"] and cfg.validate()


def test_every_preset_parses():
    from pathlib import Path

    presets = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
    assert presets
    for p in presets:
        assert isinstance(load_config(p), TrainConfig)


@pytest.mark.parametrize("overrides, match", [
    (["stepz=3"], "unknown config key stepz"),
    (["fresh.layerz=3"], "unknown config key fresh.layerz"),
    (["steps=three"], "steps must be int"),
    (["steps=1.5"], "steps must be int"),
    (["symmetric=maybe"], "symmetric must be true or false"),
    (["noequals"], "not key=value"),
])
def test_bad_overrides(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)


@pytest.mark.parametrize("overrides, match", [
    ([], "sources is empty"),
    (["sources=[{name: a, paths: []}]"], "has no paths"),
    (["sources=[{name: a, paths: [x], weight: 0}]"], "weight must be > 0"),
    (["sources=[{name: a, paths: [x]}]"], "init"),
    (["sources=[{name: a, paths: [x]}]", "init=m", "temperature=0"], "temperature"),
    (["sources=[{name: a, paths: [x]}]", "init=m", "batch_size=0"], "batch_size"),
    (["sources=[{name: a, paths: [x]}]", "init=m", "device=tpu"], "device"),
    (["sources=[{name: a, paths: [x]}]", "init=m", "max_bad_fraction=2"], "max_bad_fraction"),
])
def test_validate_names_the_bad_value(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides).validate()


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(_yaml(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_yaml(tmp_path, "a: [1, 2\n"))


@pytest.mark.parametrize("override, match", [
    ("lr=-1", r"lr must be in \(0, 1\], got -1.0"),
    ("lr=nan", r"lr must be in \(0, 1\], got nan"),
    ("temperature=5", r"temperature must be in \(0, 1\]"),
    ("warmup_steps=-2", r"warmup_steps must be >= 0"),
    ("weight_decay=-0.1", r"weight_decay must be in \[0, 1\]"),
    ("seed=-1", "seed must be >= 0"),
    ("fresh.dropout=1.5", r"fresh.dropout must be in \[0, 1\)"),
    ("fresh.heads=5", "fresh.hidden 384 must be a multiple of fresh.heads 5"),
    ("max_length=1", "max_length must be >= 2"),
    ("batch_size=1", "batch_size 1 .*no in-batch negative"),
])
def test_values_are_checked_with_their_range_when_loaded(override, match):
    """Issue 13 item 29: `--print-config` showed lr=-1 without complaint; values are checked on load."""
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])


def test_batch_of_one_is_allowed_with_explicit_hard_negatives():
    cfg = load_config(None, ["batch_size=1", "hard_negatives=1", "sources=[{name: a, paths: [x]}]", "init=m"])
    assert cfg.validate().batch_size == 1
