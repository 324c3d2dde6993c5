"""Find a checkpoint (local folder or hub id) and read what inference needs from it.

Reads both layouts: plain Hugging Face (config.json + weights + tokenizer files) and
sentence-transformers (modules.json, sentence_bert_config.json, 1_Pooling/config.json,
config_sentence_transformers.json). Every failure is a ModelLoadError naming the model and the fix.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e5kit.errors import ModelLoadError
from e5kit.io.atomic import sha256_files

log = logging.getLogger(__name__)

DEFAULT_MODEL = "intfloat/e5-base-unsupervised"
MODEL_ENV = "E5KIT_MODEL"


def default_model_name() -> str:
    """The model used when none is named: $E5KIT_MODEL, else intfloat/e5-base-unsupervised."""
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL
# Encoders whose outputs mean-pool like BERT's (E5 is BERT; multilingual-e5 is XLM-R).
BERT_FAMILY = frozenset({"bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra", "mpnet"})
WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "sentencepiece.bpe.model", "vocab.json")
POOLING_MODES = frozenset({"mean", "cls"})
HUB_PATTERNS = [
    "*.json", "*.txt", "*.model", "model.safetensors", "model.safetensors.index.json",
    "model-*.safetensors", "1_Pooling/*", "2_Normalize/*",
]
HOW_TO_FIX = (
    "Pass a local folder instead, e.g. E5('/path/to/e5-base-unsupervised') or --model /path/to/folder "
    "(a folder with config.json, model.safetensors and tokenizer files)."
)
# For a folder the user passed: telling them to "pass a local folder" would be advice they already followed.
LAYOUT = (
    "A model folder holds config.json, weights (model.safetensors) and tokenizer files, in the Hugging Face or "
    "sentence-transformers layout; E5(...).save(folder) or SentenceTransformer.save(folder) writes one."
)
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Checkpoint:
    """What a resolved checkpoint folder says about inference, before any weights are read."""

    name: str  # what the user asked for
    path: Path  # local folder
    config: dict[str, Any]
    weights_file: str
    max_seq_length: int
    pooling: str = "mean"
    normalize: bool = True
    stored_prompts: dict[str, str] = field(default_factory=dict)
    revision: str | None = None  # hub commit, when resolved from the hub

    @property
    def fix(self) -> str:
        """What to do about a broken checkpoint: the folder layout for a local one, a local folder for a hub one."""
        return fix_for(self.path)

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type", ""))

    @property
    def hidden_size(self) -> int:
        return int(self.config.get("hidden_size") or self.config.get("dim") or 0)

    def fingerprint(self) -> str:
        """sha256 over config and weights (every shard of a sharded checkpoint): names the exact weights.

        Reads the files, not the model, so a stored result can be checked against the folder without
        loading anything (~1 s per 500 MB).
        """
        files = ["config.json", self.weights_file]
        if self.weights_file.endswith(".index.json"):
            index = _read_json(self.path / self.weights_file, self.name)
            files += sorted(set((index.get("weight_map") or {}).values()))
        return sha256_files(self.path / file for file in files)


def fix_for(folder: Path) -> str:
    """Advice for a broken model folder: a hub download (in a cache's snapshots/) → use a local folder;
    a folder the user gave → what a model folder must hold."""
    return HOW_TO_FIX if any(p.name == "snapshots" for p in folder.parents) else LAYOUT


def _looks_like_path(name: str) -> bool:
    """Whether `name` can only be a local path: not of the hub form 'org/name', or its parent folder exists here.

    "models/e5" where ./models exists is the user's folder with a typo, not a hub repository.
    """
    if not HUB_ID.match(name) or ".." in name or name.endswith((".", "-")):
        return True
    return Path(name).parent.is_dir()


def resolve(model: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """Local folder for `model` and its hub revision (None for local folders).

    A path that exists is used as is. A name that can only be a path and does not exist is an
    error naming the absolute path looked at. Anything else is a hub id, downloaded once and then
    served from the huggingface_hub cache, also offline (huggingface_hub falls back to the cache).
    """
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a str or a path, got {type(model).__name__}")
    name = str(model)
    if not name.strip():  # Path("") is ".", which would load whatever the current folder holds
        raise ModelLoadError(f"model name is empty. {HOW_TO_FIX}")
    path = Path(model).expanduser()
    if path.is_dir():
        return path, None
    if path.exists():
        raise ModelLoadError(f"model {name!r} is a file, not a folder. {LAYOUT}")
    if isinstance(model, os.PathLike) or _looks_like_path(name):
        raise ModelLoadError(
            f"model {name!r}: no such folder ({path.absolute()}), and not a hub id of the form 'org/name'. "
            "Check the path (relative paths start from the current folder, "
            f"{Path.cwd()})."
        )
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(name, allow_patterns=HUB_PATTERNS))
    except Exception as exc:  # network, auth, missing repo: all end in one clear message
        offline = "offline" if os.environ.get("HF_HUB_OFFLINE") else "the hub could not be reached or refused it"
        raise ModelLoadError(
            f"model {name!r} is no local folder ({path.absolute()} does not exist), is not in the local "
            f"huggingface cache, and {offline} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
            f"Download it once while online, or {HOW_TO_FIX[0].lower()}{HOW_TO_FIX[1:]}"
        ) from exc
    return folder, folder.name if folder.parent.name == "snapshots" else None


def _read_json(path: Path, name: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"model {name!r}: {path.name} is unreadable or not JSON ({exc}). {fix_for(path)}") from exc


def _st_modules(folder: Path, name: str) -> tuple[str, bool, int | None]:
    """Pooling mode, whether a Normalize module follows, and max_seq_length from the ST layout."""
    pooling, normalize, max_len = "mean", True, None
    modules_file = folder / "modules.json"
    if not modules_file.exists():
        return pooling, normalize, max_len
    modules = _read_json(modules_file, name)
    types = [m.get("type", "") for m in modules]
    normalize = any(t.endswith("Normalize") for t in types)
    for m in modules:
        if m.get("type", "").endswith("Pooling"):
            cfg_file = folder / m.get("path", "1_Pooling") / "config.json"
            if cfg_file.exists():
                cfg = _read_json(cfg_file, name)
                modes = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v]
                mode = cfg.get("pooling_mode") or (modes[0].removeprefix("pooling_mode_") if modes else "mean_tokens")
                pooling = {"mean_tokens": "mean", "cls_token": "cls"}.get(mode, mode)
    sbert = folder / "sentence_bert_config.json"
    for m in modules:  # old layouts keep it in the transformer module's folder
        if not sbert.exists() and m.get("type", "").endswith("Transformer"):
            sbert = folder / m.get("path", "") / "sentence_bert_config.json"
    if sbert.exists():
        max_len = _read_json(sbert, name).get("max_seq_length")
    tok_cfg = folder / "tokenizer_config.json"
    if max_len is None and tok_cfg.exists():  # sentence-transformers >= 5 keeps it as model_max_length
        stored = _read_json(tok_cfg, name).get("model_max_length")
        max_len = stored if isinstance(stored, int) and 0 < stored < 1_000_000 else None
    return pooling, normalize, max_len


def _transformer_folder(root: Path, name: str) -> Path:
    """The folder holding config.json: the root, or an old ST layout's transformer module folder."""
    modules_file = root / "modules.json"
    if (root / "config.json").exists() or not modules_file.exists():
        return root
    for m in _read_json(modules_file, name):
        if m.get("type", "").endswith("Transformer") and m.get("path"):
            return root / m["path"]
    return root


def _max_positions(config: dict[str, Any]) -> int:
    positions = int(config.get("max_position_embeddings") or 512)
    # RoBERTa-style models reserve padding_idx + 1 positions.
    if config.get("model_type") in {"roberta", "xlm-roberta", "camembert"}:
        positions -= int(config.get("pad_token_id", 1)) + 1
    return positions


def read_checkpoint(model: str | os.PathLike[str]) -> Checkpoint:
    """Resolve `model` and validate the folder: config, family, weights, tokenizer, ST settings."""
    name = str(model)
    root, revision = resolve(model)
    folder = _transformer_folder(root, name)
    config_file = folder / "config.json"
    if not config_file.exists():
        raise ModelLoadError(f"model {name!r}: {folder} has no config.json. {fix_for(config_file)}")
    config = _read_json(config_file, name)
    if not isinstance(config, dict) or config.get("model_type") not in BERT_FAMILY:
        found = config.get("model_type") if isinstance(config, dict) else type(config).__name__
        raise ModelLoadError(
            f"model {name!r} is model_type {found!r}, not a BERT-family encoder "
            f"(supported: {', '.join(sorted(BERT_FAMILY))})."
        )
    weights = next((f for f in WEIGHT_FILES if (folder / f).exists()), None)
    if weights is None:
        looked = ", ".join(WEIGHT_FILES)
        raise ModelLoadError(f"model {name!r}: no weights in {folder} (looked for {looked}). {fix_for(config_file)}")
    if not any((folder / f).exists() for f in TOKENIZER_FILES):
        raise ModelLoadError(
            f"model {name!r}: no tokenizer files in {folder} (looked for {', '.join(TOKENIZER_FILES)}). "
            f"{fix_for(config_file)}"
        )
    pooling, normalize, st_max = _st_modules(root, name)
    if pooling not in POOLING_MODES:
        log.warning("model %r stores pooling %r, which e5kit lacks; using mean pooling as E5 does", name, pooling)
        pooling = "mean"
    stored = {}
    st_config = root / "config_sentence_transformers.json"
    if st_config.exists():
        stored = dict(_read_json(st_config, name).get("prompts") or {})
    max_len = min(int(st_max), _max_positions(config)) if st_max else _max_positions(config)
    return Checkpoint(name, folder, config, weights, max_len, pooling, normalize, stored, revision)
