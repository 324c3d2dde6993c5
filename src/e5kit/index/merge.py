"""Finish an index built by one or many workers: every slice reported, every shard present and sound,
contiguous ranges, checksums, unique ids; then the manifest is marked complete."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from e5kit.index.layout import (
    IndexFormatError,
    IndexIncompleteError,
    IndexLayout,
    IndexSettings,
    ShardMeta,
    read_json,
)


def _id_hashes(ids: Sequence[str]) -> np.ndarray:
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little") for s in ids),
        dtype=np.uint64,
        count=len(ids),
    )


def merge_index(folder: str | os.PathLike[str], *, checksums: bool = True) -> dict[str, Any]:
    """Check every slice and shard is there and sound, then mark the index complete; returns the manifest.

    Checks: all slice reports agree on the corpus; shards 0..N-1 exist with this index's settings,
    contiguous ranges and the content hashes the corpus gave; file checksums (when `checksums`);
    no document id twice. Idempotent: merging a complete index again changes nothing.
    """
    layout = IndexLayout(folder)
    manifest = layout.read_manifest()
    settings = IndexSettings.from_json(manifest["settings"])
    reports = (
        [(p, read_json(p, "slice report")) for p in sorted(layout.slice_dir.glob("*-of-*.json"))]
        if layout.slice_dir.is_dir()
        else []
    )
    if not reports:
        if manifest.get("complete"):
            layout.complete_shard_metas(int(manifest["complete"]["shards"]), settings, checksums=checksums)
            return manifest
        raise IndexIncompleteError(f"{layout.folder}: no finished slice yet; run `e5kit index build` first")
    first = reports[0][1]
    n = first["slice"][1]
    have = {r["slice"][0] for _, r in reports if r["slice"][1] == n}
    for path, r in reports:
        if r["slice"][1] != n:
            raise IndexFormatError(
                f"{path}: a report of a split into {r['slice'][1]} workers beside {reports[0][0].name} of a split "
                f"into {n}; every worker of one build must use the same N. Delete the reports of the split you do "
                f"not want (e.g. {path}; the shards are kept and reused), then rerun that split's workers"
            )
        if (r["shards"], r["shard_sha256"]) != (first["shards"], first["shard_sha256"]):
            raise IndexFormatError(
                f"{path}: this slice saw another corpus than {reports[0][0].name}; rerun every slice over the same "
                f"corpus (delete {path} if it came from a mistaken run)"
            )
    missing_slices = sorted(set(range(n)) - have)
    metas: list[ShardMeta] = []
    missing: list[int] = []
    for j in range(first["shards"]):
        meta = layout.read_shard_meta(j)
        if meta is None:
            missing.append(j)
            continue
        layout.verify_shard(meta, settings, checksums=checksums)
        if meta.content_sha256 != first["shard_sha256"][j]:
            raise IndexFormatError(f"{layout.folder}: shard {j} was made from other documents than the corpus")
        metas.append(meta)
    if missing or missing_slices:
        raise IndexIncompleteError(
            f"{layout.folder}: incomplete: {len(missing)} of {first['shards']} shards missing "
            f"(first: {missing[:5]}); slices not reported: {missing_slices}. Run the "
            "missing `e5kit index build --shard i/n` workers, then merge again"
        )
    pos = 0
    for meta in metas:
        if meta.start != pos:
            raise IndexFormatError(f"{layout.folder}: shard {meta.index} starts at {meta.start}, expected {pos}")
        pos += meta.count
    _check_unique_ids(layout, metas)
    digest = hashlib.sha256("".join(first["shard_sha256"]).encode()).hexdigest()
    manifest["complete"] = {
        "docs": pos,
        "shards": len(metas),
        "corpus_fingerprint": digest,
        "sources": first["sources"],
        "shard_counts": [m.count for m in metas],  # so a deleted shard can be rebuilt in its place
        "shard_sha256": first["shard_sha256"],
    }
    layout.write_manifest(manifest)
    for path, _ in reports:
        path.unlink(missing_ok=True)
    return manifest


def _check_unique_ids(layout: IndexLayout, metas: list[ShardMeta]) -> None:
    """No id twice, with 8 bytes of memory per document (hashes first, strings only for collisions)."""
    hashes = np.concatenate([_id_hashes(layout.load_ids(m)) for m in metas]) if metas else np.empty(0, np.uint64)
    uniq, counts = np.unique(hashes, return_counts=True)
    dup_hashes = set(uniq[counts > 1].tolist())
    if not dup_hashes:
        return
    seen: dict[str, int] = {}
    for meta in metas:
        ids = layout.load_ids(meta)
        for row, h in enumerate(_id_hashes(ids).tolist()):
            if h in dup_hashes:
                if ids[row] in seen:
                    raise IndexFormatError(
                        f"duplicate document id {ids[row]!r} (positions {seen[ids[row]]} and "
                        f"{meta.start + row}); ids must be unique"
                    )
                seen[ids[row]] = meta.start + row
