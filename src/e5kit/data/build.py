"""`build_pairs`: run one source builder over its inputs into pair shards, resumably and split across processes."""

from __future__ import annotations

import inspect
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from e5kit.data.pairs import Pair
from e5kit.data.shards import OutputSettings, PairWriter, bad_log_path
from e5kit.data.sources import SOURCES, get_source
from e5kit.errors import E5kitError
from e5kit.io.bad_records import BadRecords
from e5kit.options import positive_int, with_options

log = logging.getLogger("e5kit")


def parse_part(text: str | tuple[int, int] | None) -> tuple[int, int]:
    """'i/n' (0-based i < n) as (i, n); None means the whole job (0, 1)."""
    if text is None:
        return 0, 1
    if isinstance(text, tuple):
        i, n = text
    else:
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not m:
            raise ValueError(f"shard must look like 'i/n' (e.g. 0/4), got {text!r}")
        i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard i/n needs 0 <= i < n, got {i}/{n}")
    return i, n


def part_prefix(part: tuple[int, int], prefix: str = "pairs") -> str:
    """Shard-name prefix of one part, so parts write side by side into one folder."""
    return prefix if part[1] == 1 else f"{prefix}-part{part[0]:03d}of{part[1]:03d}"


def resolve_inputs(source: str, inputs: Sequence[str | os.PathLike[str]], *, install: bool = True) -> list[Path]:
    """The input files: the given ones (folders expanded, sorted), or the local corpus' defaults."""
    mod = get_source(source)
    if not inputs:
        if not hasattr(mod, "default_inputs"):
            raise ValueError(f"source {source!r} needs input files (it has no local default)")
        found = mod.default_inputs(install=install)
        if not found:
            raise E5kitError(f"no input files for {source!r}; install the Debian packages "
                             f"{', '.join(getattr(mod, 'APT_PACKAGES', ())) or '(apt lists)'} or pass --install")
        return found
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():  # a builder may say which files of a folder are its inputs (pages, not stylesheets)
            expand = getattr(mod, "expand_folder", None)
            found = expand(p) if expand else sorted(f for f in p.rglob("*") if f.is_file())
            if not found:
                raise E5kitError(f"{p}: no input files for source {source} in this folder ({SOURCES[source]})")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"no such input: {p}")
    return out


def builder_options(source: str) -> dict[str, Any]:
    """The options a source's builder takes (name -> default); `bad`, the bad-record policy, is not one."""
    mod = get_source(source)
    fn = getattr(mod, "iter_file", None) or mod.iter_inputs
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "bad"}


def check_options(source: str, options: dict[str, Any]) -> None:
    """Refuse an option the builder of `source` does not take, or a value of the wrong type, naming the valid
    ones (before any work)."""
    valid = builder_options(source)
    listed = ", ".join(f"{k} (default {v!r})" for k, v in sorted(valid.items()))
    for key, value in options.items():
        if key not in valid:
            if not valid:
                raise ValueError(f"unknown option {key!r}: source {source} takes no options")
            raise ValueError(f"unknown option {key!r} for source {source}; valid: {listed}")
        default = valid[key]
        if not _same_kind(value, default):
            kind = type(default).__name__
            raise ValueError(f"option {key} must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}, got {value!r}")


def _same_kind(value: Any, default: Any) -> bool:
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def _select(files: list[Path], part: tuple[int, int]) -> tuple[list[Path], bool]:
    """This part's files, and whether pairs (not files) must be split because there are fewer files than parts."""
    i, n = part
    if n == 1:
        return files, False
    if len(files) >= n:
        return files[i::n], False
    return files, True


def build_pairs(source: str, inputs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
                install: bool = True, limit: int | None = None, options: dict[str, Any] | None = None,
                output: OutputSettings | None = None, **output_options: Any) -> dict[str, Any]:
    """Build pairs of `source` from `inputs` (or its local defaults) into shards under `out`; returns the manifest.

    `output` (or its fields as keywords: fmt, shard_bytes, part, resume, show_progress, max_bad_fraction) says
    how shards are written and how many malformed input records are tolerated (counted, listed in
    `<prefix>.bad_records.log`, summed in the manifest's `bad_records`); `options` go to the source's builder
    (unknown ones are refused with the valid ones listed).

    `part="i/n"` builds the i-th of n disjoint parts (by input file when there are at least n, else by pair
    position), named so that all parts share one folder. An interrupted build resumes from its finished shards,
    only with the same settings (source, part, options, number of inputs); another writer of the same shards
    is refused.
    """
    from tqdm.auto import tqdm

    o = with_options(OutputSettings, output, output_options)
    mod = get_source(source)
    options = dict(options or {})
    check_options(source, options)
    part_t = parse_part(o.part)
    if limit is not None:
        positive_int("limit", limit)
    files, split_pairs = _select(resolve_inputs(source, inputs, install=install), part_t)
    info = {"source": source, "part": list(part_t), "options": options, "inputs": len(files)}
    prefix = part_prefix(part_t)
    writer = PairWriter(out, fmt=o.fmt, shard_bytes=o.shard_bytes, prefix=prefix, resume=o.resume, info=info)
    if writer.complete:
        writer.release()
        log.info("%s: build already complete (%d pairs)", out, writer.count)
        return writer.manifest
    bad = BadRecords(o.max_bad_fraction, bad_log_path(out, prefix), what="input records")
    if not split_pairs:  # finished inputs are not read again: their counts come from the manifest
        bad.add(**writer.bad_counts_done())
    bar = tqdm(total=len(files), unit="file", desc=f"build {source}", disable=o.show_progress is False)
    produced = 0
    try:
        produced = _write_pairs(writer, _stream(mod, files, writer.inputs_done(), options, split_pairs, part_t, bar,
                                                bad), limit)
        summary = bad.finish()
    except BaseException:
        writer.abort()
        writer.close(done=False)
        raise
    finally:
        bar.close()
    manifest = writer.close(done=True, extra={"bad_records": summary})
    log.info("%s: %d pairs (%d new) in %d shards", out, writer.count, produced, len(manifest["shards"]))
    return manifest


def iter_source_pairs(source: str, files: Sequence[Path], options: dict[str, Any], bad: BadRecords) -> Iterator[Pair]:
    """The pairs `source`'s builder makes from `files`, in order, under the bad-record policy `bad`: what
    `build_pairs` writes, for a pipeline that writes them elsewhere (e5kit.scale's datatrove reader)."""
    from tqdm.auto import tqdm

    with tqdm(disable=True) as bar:
        for _, pair, _, _ in _stream(get_source(source), list(files), {}, options, False, (0, 1), bar, bad):
            if pair is not None:
                yield pair


def splits_by_file(source: str) -> bool:
    """Whether `source`'s builder reads each input file on its own (`iter_file`), so files may go to different
    workers; a builder of several files together (`iter_inputs`, e.g. reddit) needs them all in one."""
    return hasattr(get_source(source), "iter_file")


def _write_pairs(writer: PairWriter, stream: Iterator[tuple[int, Pair | None, Path | None, dict[str, int]]],
                 limit: int | None) -> int:
    """Write the stream's pairs not in finished shards yet (and mark finished inputs); returns how many."""
    produced = 0
    for pair_no, pair, finished, counts in stream:
        if finished is not None:
            writer.mark_input(str(finished), **counts)
            continue
        if pair_no < writer.resume_from:
            continue
        writer.write(pair)
        produced += 1
        if limit is not None and writer.count >= limit:
            break
    return produced


def _with_policy(builder: Any, options: dict[str, Any], bad: BadRecords) -> dict[str, Any]:
    """The builder's options, plus the bad-record policy for builders that read records (they take `bad`)."""
    params = inspect.signature(builder).parameters
    takes_bad = "bad" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return {**options, "bad": bad} if takes_bad else options


def _stream(mod: Any, files: list[Path], done: dict[str, int], options: dict[str, Any], split_pairs: bool,
            part: tuple[int, int], bar: Any, bad: BadRecords
            ) -> Iterator[tuple[int, Pair | None, Path | None, dict[str, int]]]:
    """(pair number, pair, None, {}) for each pair of this part, and (n, None, file, its record counts) when a
    file is finished. Files already finished in an earlier run are skipped unread, their pair numbers
    accounted for. Every builder reads under the one bad-record policy `bad`."""
    number = 0
    seen = 0

    def mine() -> bool:
        return not split_pairs or seen % part[1] == part[0]

    if not hasattr(mod, "iter_file"):
        for pair in mod.iter_inputs(files, **_with_policy(mod.iter_inputs, options, bad)):
            if mine():
                yield number, pair, None, {}
                number += 1
            seen += 1
        bar.update(len(files))
        return
    for path in files:
        if str(path) in done and not split_pairs:
            number = done[str(path)]
            bar.update(1)
            continue
        before = bad.state()
        for pair in mod.iter_file(path, **_with_policy(mod.iter_file, options, bad)):
            if mine():
                yield number, pair, None, {}
                number += 1
            seen += 1
        bad.check()  # judged at the end of every file, however few records it had
        yield number, None, path, {k: bad.state()[k] - before[k] for k in ("seen", "bad")}
        bar.update(1)
