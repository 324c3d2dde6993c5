"""Resume only with identical settings: what differs between the settings a stage recorded and the current ones.

Every resumable stage (pairs build, pairs filter, train) records its settings beside its output and refuses to
continue under other ones, listing the differences this function finds (as `index build` does)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

NOT_RECORDED = "<not recorded>"


def differences(recorded: Mapping[str, Any], current: Mapping[str, Any], *,
                ignore: Collection[str] = ()) -> list[str]:
    """'name: recorded != current' for each setting that differs, in the order of `current`."""
    keys = [*current, *(k for k in recorded if k not in current)]
    out = []
    for key in keys:
        old, new = recorded.get(key, NOT_RECORDED), current.get(key, NOT_RECORDED)
        if key not in ignore and old != new:
            out.append(f"{key}: {old!r} != {new!r}")
    return out
