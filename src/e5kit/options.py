"""Settings objects from keyword options: unknown names are refused with the valid ones listed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

S = TypeVar("S")


def with_options(cls: type[S], settings: S | None, options: Mapping[str, Any]) -> S:
    """`settings` (or the defaults of dataclass `cls`) with `options` applied by name."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)} for {cls.__name__}; valid: {', '.join(names)}")
    if settings is not None and not isinstance(settings, cls):
        raise TypeError(f"settings must be a {cls.__name__}, got {type(settings).__name__}")
    return dataclasses.replace(settings or cls(), **options)  # type: ignore[type-var]
