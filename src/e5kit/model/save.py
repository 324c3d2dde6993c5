"""Write a checkpoint in Hugging Face + sentence-transformers layout, with everything inference needs.

Weights, config and tokenizer sit at the root (transformers' AutoModel loads them); modules.json
chains Transformer -> Pooling -> Normalize, and config_sentence_transformers.json keeps the prompts,
so `SentenceTransformer(folder).encode(texts, prompt_name="query")` reproduces E5's vectors.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from e5kit import __version__

if TYPE_CHECKING:  # pragma: no cover
    from e5kit.embedder import E5


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_checkpoint(folder: Path, hf_model: Any, hf_tokenizer: Any, *, max_seq_length: int,
                     prompts: Mapping[str, str], pooling: str = "mean", normalize: bool = True,
                     extra_files: Mapping[str, Any] | None = None) -> Path:
    """Write all files into `folder` atomically: a temp folder beside it, renamed when complete."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    from e5kit.model.encoder import quiet_transformers

    try:
        with quiet_transformers():
            hf_model.save_pretrained(tmp, safe_serialization=True)
        hf_tokenizer.save_pretrained(tmp)
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ]
        if normalize:
            modules.append(
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
            )
            (tmp / "2_Normalize").mkdir()
        _write_json(tmp / "modules.json", modules)
        _write_json(tmp / "sentence_bert_config.json", {"max_seq_length": int(max_seq_length), "do_lower_case": False})
        dim = int(hf_model.config.hidden_size)
        _write_json(tmp / "1_Pooling" / "config.json", {
            "word_embedding_dimension": dim,
            "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        })
        _write_json(tmp / "config_sentence_transformers.json", {
            "prompts": dict(prompts),
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
            "__version__": {"e5kit": __version__},
        })
        for name, data in (extra_files or {}).items():
            _write_json(tmp / name, data)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def save_checkpoint(e5: E5, folder: Path) -> Path:
    """Save a loaded E5 in fp32 (re-read from disk when it runs in a lower precision)."""
    from e5kit.model.encoder import load_hf_model

    model = e5.engine.encoder.model
    if e5.precision != "fp32":
        model = load_hf_model(e5.checkpoint)
    return write_checkpoint(folder, model, e5.engine.tokenizer.hf, max_seq_length=e5.max_seq_length,
                            prompts=e5.prompts, pooling=e5.checkpoint.pooling, normalize=e5.checkpoint.normalize)
