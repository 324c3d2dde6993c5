"""One dataclass describes a training run; YAML presets and `--set key=value` flags fill it.

The resolved config is written beside every checkpoint (train_config.json), so a run can be
reproduced or resumed from its folder alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from e5kit.errors import E5kitError
from e5kit.io.bad_records import DEFAULT_MAX_BAD_FRACTION
from e5kit.model.prompts import E5_PROMPTS


class ConfigError(E5kitError, ValueError):
    """A training config key or value is wrong; the message names it and what is allowed."""


@dataclass
class ModelSizes:
    """A fresh BERT (random weights) when `TrainConfig.init` is empty. Vocabulary comes from `tokenizer`."""

    tokenizer: str = ""  # folder with tokenizer files (e.g. the all-MiniLM-L6-v2 package's, bert-base-uncased vocab)
    hidden: int = 384
    layers: int = 6
    heads: int = 12
    intermediate: int = 1536
    max_positions: int = 512
    dropout: float = 0.1


@dataclass
class Source:
    """One pair source: shard files (globs allowed) and its mixing weight."""

    name: str = "default"
    paths: list[str] = field(default_factory=list)
    weight: float = 1.0


@dataclass
class Distill:
    """Distillation from a cross-encoder's `teacher_scores` (E5 fine-tuning): loss = KL(teacher || student) over
    each query's [positive + hard negatives] + alpha x InfoNCE. SimLM's recipe: alpha 0.2, teacher scores as is."""

    alpha: float = 0.2
    teacher_temperature: float = 1.0


@dataclass
class TrainConfig:
    """Everything a run needs. Defaults follow E5 pre-training where it makes sense on one machine."""

    output_dir: str = "runs/e5-train"
    init: str = ""  # any checkpoint e5kit loads; empty means a fresh model from `fresh`
    fresh: ModelSizes = field(default_factory=ModelSizes)
    sources: list[Source] = field(default_factory=list)
    # data
    max_length: int = 128
    query_max_length: int = 0  # tokens per query; 0 = max_length (E5 fine-tuning: queries 32, passages 144)
    shuffle_buffer: int = 10_000
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION
    query_prefix: str = E5_PROMPTS["query"]  # instruct models: "Instruct: {instruction}\nQuery: " and ""
    passage_prefix: str = E5_PROMPTS["passage"]
    # loss
    temperature: float = 0.01
    symmetric: bool = False
    hard_negatives: int = 0  # explicit negatives per query taken from each pair's `negatives`
    distill: Distill | None = None  # e.g. {alpha: 0.2, teacher_temperature: 1.0}; needs hard_negatives >= 1
    # optimisation
    batch_size: int = 32  # global contrastive batch (pairs), summed over all ranks
    chunk_size: int = 0  # GradCache chunk (pairs per forward); 0 = whole local batch at once
    steps: int = 100
    max_minutes: float = 0.0  # > 0: stop (with a checkpoint) after this much wall time, even before `steps`
    lr: float = 1e-4
    warmup_steps: int = 10
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    bf16: bool = False
    gradient_checkpointing: bool = False
    freeze_position_embeddings: bool = True
    dropout: bool = True  # False switches the model to eval mode (deterministic; used by equality tests)
    seed: int = 42
    device: str = ""  # "" = cuda if available else cpu
    # checkpoints and logging
    save_every: int = 50
    keep_last: int = 3
    log_every: int = 1
    eval_every: int = 0
    eval_tasks: list[str] = field(default_factory=list)
    show_progress: bool = True

    def check_values(self) -> TrainConfig:
        """Raise ConfigError naming the first value outside its range (checked on load, before any work)."""
        values = {**{f"fresh.{k}": v for k, v in dataclasses.asdict(self.fresh).items()}, **self.to_dict()}
        for name, bounds in RANGES.items():
            _check_range(name, values[name], *bounds)
        if not self.init and self.fresh.hidden % self.fresh.heads:  # the fresh sizes only count without init
            raise ConfigError(f"fresh.hidden {self.fresh.hidden} must be a multiple of fresh.heads {self.fresh.heads}")
        if self.batch_size < 2 and not self.hard_negatives:
            raise ConfigError(f"batch_size {self.batch_size} leaves no in-batch negative (the loss is always 0 and "
                              "nothing is learnt): use batch_size >= 2, or hard_negatives >= 1 with pairs that "
                              "carry 'negatives'")
        for src in self.sources:
            if not src.weight > 0:
                raise ConfigError(f"source {src.name!r}: weight must be > 0, got {src.weight!r}")
        if self.device not in ("", "cpu") and not self.device.startswith("cuda"):
            raise ConfigError(f"device must be '', 'cpu' or 'cuda[:N]', got {self.device!r}")
        return self

    def validate(self) -> TrainConfig:
        """Raise ConfigError naming the first bad value or missing piece (sources, a model to start from)."""
        self.check_values()
        if self.distill is not None:
            if self.hard_negatives < 1:
                raise ConfigError("distill needs hard_negatives >= 1: the teacher scores each query's positive and "
                                  "its hard negatives")
            if not self.distill.alpha >= 0:
                raise ConfigError(f"distill.alpha must be >= 0, got {self.distill.alpha!r}")
            if not self.distill.teacher_temperature > 0:
                raise ConfigError(f"distill.teacher_temperature must be > 0, got {self.distill.teacher_temperature!r}")
        if not self.sources:
            raise ConfigError("sources is empty: give at least one {name, paths, weight} entry")
        for src in self.sources:
            if not src.paths:
                raise ConfigError(f"source {src.name!r} has no paths")
        if not self.init and not self.fresh.tokenizer:
            raise ConfigError("give either init (a checkpoint) or fresh.tokenizer (a folder with a vocabulary)")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Allowed range of each number: (low, high, low excluded, high excluded); None = unbounded.
RANGES: dict[str, tuple[float, float | None, bool, bool]] = {
    "max_length": (2, None, False, False), "shuffle_buffer": (1, None, False, False),
    "max_bad_fraction": (0, 1, False, False), "temperature": (0, 1, True, False),
    "hard_negatives": (0, None, False, False), "batch_size": (1, None, False, False),
    "chunk_size": (0, None, False, False), "steps": (1, None, False, False), "max_minutes": (0, None, False, False),
    "lr": (0, 1, True, False), "warmup_steps": (0, None, False, False), "weight_decay": (0, 1, False, False),
    "max_grad_norm": (0, None, False, False), "seed": (0, None, False, False), "save_every": (1, None, False, False),
    "keep_last": (1, None, False, False), "log_every": (1, None, False, False), "eval_every": (0, None, False, False),
    "query_max_length": (0, None, False, False),
    "fresh.hidden": (1, None, False, False), "fresh.layers": (1, None, False, False),
    "fresh.heads": (1, None, False, False), "fresh.intermediate": (1, None, False, False),
    "fresh.max_positions": (2, None, False, False), "fresh.dropout": (0, 1, False, True),
}


def _check_range(name: str, value: float, low: float, high: float | None, low_open: bool, high_open: bool) -> None:
    above = value > low if low_open else value >= low
    below = True if high is None else value < high if high_open else value <= high
    if above and below:  # NaN fails both
        return
    if high is None:
        raise ConfigError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    raise ConfigError(f"{name} must be in {interval}, got {value!r}")


def _convert(value: Any, hint: Any, key: str) -> Any:
    """`value` (from YAML or a flag string) as type `hint`, or ConfigError naming `key`."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):  # X | None: None (YAML null, "null", "none") or an X
        if value is None or (isinstance(value, str) and value.strip().lower() in ("null", "none", "~")):
            return None
        (inner,) = [a for a in get_args(hint) if a is not type(None)]
        return _convert(value, inner, key)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, str):
            import yaml

            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {type(value).__name__}")
        return from_dict(hint, value, prefix=f"{key}.")
    if origin is list:
        (item,) = get_args(hint)
        if isinstance(value, str):
            import yaml

            value = yaml.safe_load(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {type(value).__name__}")
        return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        try:
            out = hint(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{key} must be {hint.__name__}, got {value!r}") from exc
        if hint is int and isinstance(value, float) and out != value:
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return out
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type, data: dict[str, Any], *, prefix: str = "") -> Any:
    """Build dataclass `cls` from a mapping; unknown keys are errors that list the known ones."""
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown config key {prefix}{unknown[0]} (known: {', '.join(names)})")
    return cls(**{k: _convert(v, hints[k], f"{prefix}{k}") for k, v in data.items()})


def load_config(path: str | os.PathLike[str] | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Config from a YAML (or JSON) file, then `key=value` overrides (dotted keys reach nested fields)."""
    data: dict[str, Any] = {}
    if path is not None:
        import yaml

        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML ({exc})") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{p}: top level must be a mapping of config keys, got {type(loaded).__name__}")
        data = loaded or {}
        # relative data paths in a config file are relative to the file
        for src in data.get("sources") or []:
            if isinstance(src, dict) and isinstance(src.get("paths"), list):
                src["paths"] = [os.path.abspath(p.parent / s) if not os.path.isabs(s) and (p.parent / s).exists()
                                else s for s in src["paths"]]
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a mapping")
        node[parts[-1]] = value  # a string; _convert parses it by the field's type
    return from_dict(TrainConfig, data).check_values()


def save_config(cfg: TrainConfig, path: Path) -> None:
    path.write_text(json.dumps(cfg.to_dict(), indent=2) + "\n", encoding="utf-8")
