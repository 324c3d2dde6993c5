"""On-disk layout of an index folder: manifest, shards and their metadata, written atomically.

```
INDEX/manifest.json            settings (model, prompts, precision, dim, ...); once merged, the complete state
INDEX/shards/00000.f32.npy     (count, dim) embeddings (.f16.npy for float16), memory-mappable
INDEX/shards/00000.int8.npy    optional int8 copy (round(x * 127)); 00000.binary.npy: packed sign bits
INDEX/shards/00000.ids.json    the shard's document ids, in row order
INDEX/shards/00000.json        shard metadata, written LAST: its presence means the shard is complete
INDEX/slices/I-of-N.json       a worker's report that its slice is done (removed by merge)
```
Every file is written to a temporary name, fsynced and renamed, so a crash leaves either the old
state or the new one, never half a shard.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from e5kit.errors import E5kitError
from e5kit.io.atomic import atomic_save_npy, atomic_write_bytes, atomic_write_json, file_sha256

FORMAT = "e5kit-index/1"
DTYPES = {"float32": ("f32", np.float32), "float16": ("f16", np.float16)}
QUANTIZED = ("int8", "binary")
DEFAULT_SHARD_SIZE = 16384


class IndexFormatError(E5kitError):
    """An index folder is missing, incomplete, corrupt, or does not match the model/settings asked for."""


class IndexIncompleteError(IndexFormatError):
    """Some slices or shards of the index are not finished yet (other workers may still be running)."""


@dataclass(frozen=True)
class IndexSettings:
    """Everything that decides the embeddings' values and layout; builds share shards only if equal."""

    model: str
    model_fingerprint: str
    revision: str | None
    prompts: Mapping[str, str]
    passage_prefix: str
    query_prefix: str
    precision: str
    dim: int
    max_seq_length: int
    normalize: bool
    dtype: str = "float32"
    quantize: tuple[str, ...] = ()
    shard_size: int = DEFAULT_SHARD_SIZE
    fields: Mapping[str, str | None] = field(default_factory=dict)
    skip_empty: bool = False

    def key(self) -> str:
        """sha256 of the settings except the model's name (the fingerprint identifies the weights)."""
        data = asdict(self)
        data.pop("model")
        data["quantize"] = sorted(data["quantize"])
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["prompts"], data["fields"], data["quantize"] = (
            dict(self.prompts),
            dict(self.fields),
            list(self.quantize),
        )
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IndexSettings:
        data = dict(data)
        data["quantize"] = tuple(data.get("quantize", ()))
        return cls(**data)

    def differences(self, other: IndexSettings) -> list[str]:
        """For each setting that differs (the model name excepted): 'name: the index has X, this run Y; pass ...'.

        Other weights make every setting that follows from the model differ; then only the weights are named."""
        a, b = self.to_json(), other.to_json()
        names = [k for k in a if k != "model" and a[k] != b[k]]
        if "model_fingerprint" in names:
            return [f"model: the index was built by {self.model!r} (weights {self.model_fingerprint[:12]}), this run "
                    f"uses {other.model!r} ({other.model_fingerprint[:12]}); leave --model out to use the index's"]
        return [f"{k}: the index has {a[k]!r}, this run {b[k]!r}; {how_to_set(k, a[k])}" for k in names]


def how_to_set(name: str, value: Any) -> str:
    """How a user asks for `value` of setting `name`: the command-line flag and the Python keyword."""
    if name == "normalize":
        cli = "leave --no-normalize out" if value else "pass --no-normalize"
    elif name == "skip_empty":
        cli = "pass --skip-empty" if value else "leave --skip-empty out"
    elif name == "quantize":
        cli = ("pass " + " ".join(f"--quantize {q}" for q in value)) if value else "leave --quantize out"
    elif name == "fields":
        cli = "pass " + " ".join(f"--{k}-field {v or repr('')}" for k, v in dict(value).items())
    elif name in ("query_prefix", "passage_prefix", "prompts"):
        return f"load the model with the index's prompts (Python: E5(..., prompts={{...}}), {name} {value!r})"
    elif name in SETTING_FLAGS:
        cli = f"pass {SETTING_FLAGS[name]} {value}"
    else:
        return f"the index needs {name}={value!r}"
    keyword = "max_seq_length" if name == "max_seq_length" else name
    return f"{cli} ({keyword}={value!r} in Python)"


# The command-line flag of each build setting that a plain value sets.
SETTING_FLAGS = {"max_seq_length": "--max-length", "precision": "--precision", "dtype": "--dtype",
                 "shard_size": "--shard-size"}


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{path}: corrupt {what} ({exc})") from exc


def quantize(vectors: np.ndarray, kind: str) -> np.ndarray:
    """int8: round(x * 127) (for unit vectors, |x| <= 1); binary: sign bits packed 8 per byte."""
    if kind == "int8":
        return np.clip(np.rint(vectors * 127.0), -127, 127).astype(np.int8)
    if kind == "binary":
        return np.packbits(vectors > 0, axis=1)
    raise ValueError(f"quantization {kind!r} is not one of {', '.join(QUANTIZED)}")


def dequantize(block: np.ndarray, kind: str, dim: int) -> np.ndarray:
    """float32 vectors whose inner products rank like the quantized copy's."""
    if kind == "int8":
        return block.astype(np.float32) / 127.0
    if kind == "binary":
        return np.unpackbits(block, axis=1, count=dim).astype(np.float32) * 2.0 - 1.0
    raise ValueError(f"quantization {kind!r} is not one of {', '.join(QUANTIZED)}")


@dataclass(frozen=True)
class ShardMeta:
    """What one shard holds: its place in the corpus, the content it was made from, its files' checksums."""

    index: int
    start: int
    count: int
    settings_key: str
    content_sha256: str
    files: Mapping[str, str]  # kind ("vectors", "ids", "int8", "binary") -> sha256 of the file

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["files"] = dict(self.files)
        return data


class IndexLayout:
    """Paths inside one index folder, and reading/writing of its manifest and shard metadata."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.manifest_path = self.folder / "manifest.json"
        self.shard_dir = self.folder / "shards"
        self.slice_dir = self.folder / "slices"

    def shard_file(self, index: int, kind: str, dtype: str = "float32") -> Path:
        suffix = {
            "vectors": f"{DTYPES[dtype][0]}.npy",
            "ids": "ids.json",
            "meta": "json",
            "int8": "int8.npy",
            "binary": "binary.npy",
        }[kind]
        return self.shard_dir / f"{index:05d}.{suffix}"

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def read_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            raise IndexFormatError(
                f"{self.folder}: not an e5kit index (no manifest.json); build one with "
                f"`e5kit index build CORPUS -o {self.folder}`"
            )
        manifest = read_json(self.manifest_path, "manifest")
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise IndexFormatError(
                f"{self.manifest_path}: not an {FORMAT} manifest "
                f"(format {manifest.get('format') if isinstance(manifest, dict) else None!r})"
            )
        return manifest

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.manifest_path, dict(manifest))

    def read_shard_meta(self, index: int) -> ShardMeta | None:
        """The shard's metadata, or None when the shard was never finished."""
        path = self.shard_file(index, "meta")
        if not path.is_file():
            return None
        data = read_json(path, "shard metadata")
        try:
            return ShardMeta(**data)
        except TypeError as exc:
            raise IndexFormatError(f"{path}: corrupt shard metadata ({exc})") from exc

    def complete_shard_metas(self, count: int, settings: IndexSettings | None = None, *,
                             checksums: bool = False) -> list[ShardMeta]:
        """Metadata of shards 0..count-1 of a finished index (verified against `settings` when given);
        a missing shard raises IndexFormatError naming it and the way out."""
        metas = []
        for j in range(count):
            meta = self.read_shard_meta(j)
            if meta is None:
                raise IndexFormatError(
                    f"{self.folder}: shard {j} of the finished index is missing; rerun `e5kit index build` "
                    "over the same corpus to rewrite it")
            if settings is not None:
                self.verify_shard(meta, settings, checksums=checksums)
            metas.append(meta)
        return metas

    def write_shard(
        self,
        index: int,
        start: int,
        ids: list[str],
        vectors: np.ndarray,
        settings: IndexSettings,
        content_sha256: str,
    ) -> ShardMeta:
        """Write a shard's files, then its metadata last (atomically): a crash never leaves half a shard."""
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        files = {
            "vectors": atomic_save_npy(
                self.shard_file(index, "vectors", settings.dtype), vectors.astype(DTYPES[settings.dtype][1])
            )
        }
        for kind in settings.quantize:
            files[kind] = atomic_save_npy(self.shard_file(index, kind), quantize(vectors, kind))
        ids_bytes = json.dumps(ids, ensure_ascii=False).encode("utf-8")
        atomic_write_bytes(self.shard_file(index, "ids"), ids_bytes)
        files["ids"] = hashlib.sha256(ids_bytes).hexdigest()
        meta = ShardMeta(index, start, len(ids), settings.key(), content_sha256, files)
        atomic_write_json(self.shard_file(index, "meta"), meta.to_json())
        return meta

    def rewrite_hint(self, index: int) -> str:
        """What to do about a bad shard: the build rewrites any shard whose files are gone."""
        return (f"delete {self.shard_dir / f'{index:05d}'}.* (all of shard {index}'s files) and rerun "
                "`e5kit index build` over the same corpus to rewrite it")

    def shard_paths(self, meta: ShardMeta, dtype: str) -> dict[str, Path]:
        return {kind: self.shard_file(meta.index, kind, dtype) for kind in meta.files}

    def verify_shard(self, meta: ShardMeta, settings: IndexSettings, *, checksums: bool) -> None:
        """Raise IndexFormatError if a shard's files are missing, foreign, truncated or altered."""
        where = f"{self.folder}: shard {meta.index}"
        if meta.settings_key != settings.key():
            raise IndexFormatError(
                f"{where} was written with other settings or another model (a foreign shard); "
                f"{self.rewrite_hint(meta.index)}, or build into a fresh folder"
            )
        for kind, path in self.shard_paths(meta, settings.dtype).items():
            if not path.is_file():
                raise IndexFormatError(f"{where}: file {path.name} is missing; {self.rewrite_hint(meta.index)}")
            if checksums and file_sha256(path) != meta.files[kind]:
                raise IndexFormatError(
                    f"{where}: file {path.name} is corrupt (checksum mismatch); {self.rewrite_hint(meta.index)}"
                )
            if kind != "ids":
                self.load_array(meta, kind, settings)

    def load_array(self, meta: ShardMeta, kind: str, settings: IndexSettings) -> np.ndarray:
        """A shard's array, memory-mapped, with its shape checked against the metadata."""
        path = self.shard_file(meta.index, kind, settings.dtype)
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise IndexFormatError(f"{path}: corrupt shard file ({exc}); {self.rewrite_hint(meta.index)}") from exc
        width = settings.dim if kind in ("vectors", "int8") else (settings.dim + 7) // 8
        if arr.ndim != 2 or arr.shape != (meta.count, width):
            raise IndexFormatError(
                f"{path}: shape {arr.shape} does not match the shard's metadata "
                f"({meta.count}, {width}); the shard is corrupt or foreign: {self.rewrite_hint(meta.index)}"
            )
        return arr

    def load_ids(self, meta: ShardMeta) -> list[str]:
        path = self.shard_file(meta.index, "ids")
        ids = read_json(path, "shard ids")
        if not isinstance(ids, list) or len(ids) != meta.count:
            raise IndexFormatError(
                f"{path}: expected {meta.count} ids, found "
                f"{len(ids) if isinstance(ids, list) else type(ids).__name__}"
            )
        return ids
