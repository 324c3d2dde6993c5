"""Writes that readers see whole or not at all, and file checksums: the one place e5kit does either.

Every file e5kit writes (embeddings, index shards, manifests, pair shards, checkpoints) goes to a temporary
name beside its target, is flushed to disk and then renamed over the target, so a crash or `kill -9` never
leaves half a file under the final name. Temporary files are created with `open(..., "x")`, so they follow
the user's umask (a saved model is as readable as any other file the user makes), never 0600.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported where an array is saved: `e5kit --help` stays light
    import numpy as np


def temp_path(path: Path) -> Path:
    """A hidden temporary name beside `path`, unique per process (two writers never share one)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write `path`'s content into; it replaces `path` only if the block succeeds."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        if fsync and tmp.exists():
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write bytes to `path` through a temporary file, fsync and rename."""
    with atomic_path(path, fsync=False) as tmp, open(tmp, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 1) -> None:
    """JSON (UTF-8, non-ASCII kept) written atomically, with a final newline."""
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def atomic_save_npy(path: str | os.PathLike[str], array: np.ndarray) -> str:
    """np.save atomically (no pickle); returns the file's sha256, read back before the rename."""
    import numpy as np

    with atomic_path(path, fsync=False) as tmp:
        with open(tmp, "xb") as fh:
            np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        return file_sha256(tmp)  # from the page cache; hashing releases the GIL


def sha256_files(paths: Iterable[str | os.PathLike[str]]) -> str:
    """One sha256 over the bytes of several files, in order (e.g. a checkpoint's config and weights)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    return sha256_files([path])


def check_writable(path: str | os.PathLike[str]) -> None:
    """Fail now, naming `path`, if a file could not be created there later (after hours of work, under a temp
    name): its folder, or the nearest folder that exists above it, must be a folder new files can be made in.

    Creating and removing a probe file is the test, so read-only mounts, ACLs and root-squashed shares are
    caught as well as plain modes. Nothing is created when the check fails.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder; name a file")
    check_folder_writable(path.parent, path)


def check_folder_writable(folder: str | os.PathLike[str], target: str | os.PathLike[str] | None = None) -> None:
    """Fail now if files cannot be made in `folder` (or, if it does not exist yet, the nearest folder above it),
    naming `target` (what will be written; default the folder). A probe file is made and removed."""
    folder, target = Path(folder), Path(target if target is not None else folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"cannot write {target}: {folder} is a file, not a folder")
    probe = folder / f".e5kit-probe.{os.getpid()}.tmp"
    try:
        with open(probe, "xb"):
            pass
    except FileExistsError:
        return  # a leftover probe of this pid: the folder took a file, so it is writable
    except OSError as exc:
        raise PermissionError(f"cannot write {target}: folder {folder} is not writable ({exc.strerror})") from None
    probe.unlink(missing_ok=True)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(root: str | os.PathLike[str]) -> None:
    """Give every file and folder under `root` the mode a plain `open`/`mkdir` would (libraries that write
    through private temp files, such as safetensors, leave 0600 behind)."""
    mask = current_umask()
    root = Path(root)
    for path in (root, *root.rglob("*")):
        if not path.is_symlink():
            path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)
