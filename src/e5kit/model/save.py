"""Write a checkpoint in Hugging Face + sentence-transformers layout, with everything inference needs.

Weights, config and tokenizer sit at the root (transformers' AutoModel loads them); modules.json
chains Transformer -> Pooling -> Normalize, and config_sentence_transformers.json keeps the prompts,
so `SentenceTransformer(folder).encode(texts, prompt_name="query")` reproduces E5's vectors.

This module only writes files; `E5.save` decides what to save (it owns the model), the trainer
saves its checkpoints through the same writer.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e5kit import __version__
from e5kit.io.atomic import atomic_write_json, follow_umask


@dataclass(frozen=True)
class InferenceSpec:
    """What inference needs beside the weights: saved in sentence-transformers' files."""

    max_seq_length: int
    prompts: Mapping[str, str] = field(default_factory=dict)
    pooling: str = "mean"
    normalize: bool = True


def check_target(folder: Path, *, overwrite: bool) -> None:
    """Refuse a file, or a non-empty folder unless `overwrite` (then only e5kit's own files are replaced)."""
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file, not a folder; choose a folder for the checkpoint")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} is not empty; choose a new folder, or pass overwrite=True "
                              "(--overwrite) to replace the checkpoint files in it (other files are kept)")


def _files(tmp: Path, hf_model: Any, hf_tokenizer: Any, spec: InferenceSpec, extra: Mapping[str, Any]) -> None:
    from e5kit.model.encoder import quiet_transformers

    with quiet_transformers():
        hf_model.save_pretrained(tmp, safe_serialization=True)
    hf_tokenizer.save_pretrained(tmp)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if spec.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (tmp / "2_Normalize").mkdir()
    (tmp / "1_Pooling").mkdir()
    atomic_write_json(tmp / "modules.json", modules, indent=2)
    atomic_write_json(tmp / "sentence_bert_config.json",
                      {"max_seq_length": int(spec.max_seq_length), "do_lower_case": False}, indent=2)
    atomic_write_json(tmp / "1_Pooling" / "config.json", {
        "word_embedding_dimension": int(hf_model.config.hidden_size),
        "pooling_mode_cls_token": spec.pooling == "cls",
        "pooling_mode_mean_tokens": spec.pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_lasttoken": spec.pooling == "last",
    }, indent=2)
    atomic_write_json(tmp / "config_sentence_transformers.json", {
        "prompts": dict(spec.prompts), "default_prompt_name": None, "similarity_fn_name": "cosine",
        "__version__": {"e5kit": __version__},
    }, indent=2)
    for name, data in extra.items():
        atomic_write_json(tmp / name, data, indent=2)


def _move_into(tmp: Path, folder: Path) -> None:
    """Move what `tmp` holds into `folder` name by name; entries of `folder` with other names stay."""
    for entry in tmp.iterdir():
        dest = folder / entry.name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        os.replace(entry, dest)
    tmp.rmdir()


def write_checkpoint(folder: str | os.PathLike[str], hf_model: Any, hf_tokenizer: Any, spec: InferenceSpec, *,
                     extra_files: Mapping[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write the checkpoint into a temp folder beside `folder`, then move it in place.

    A new or empty `folder` is replaced by the complete temp folder in one rename. With `overwrite`,
    an existing folder gets e5kit's files replaced one by one and keeps every other file.
    """
    folder = Path(folder)
    check_target(folder, overwrite=overwrite)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _files(tmp, hf_model, hf_tokenizer, spec, extra_files or {})
        follow_umask(tmp)
        if folder.is_dir() and any(folder.iterdir()):
            _move_into(tmp, folder)
        else:
            if folder.is_dir():
                folder.rmdir()
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
