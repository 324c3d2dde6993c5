"""Settings objects from keyword options: unknown names are refused with the valid ones listed."""

from __future__ import annotations

import dataclasses
import numbers
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


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type: a TypeError, and a ValueError too, so that callers (and the CLI) that
    catch bad values catch it as well."""


def positive_int(name: str, value: Any) -> int:
    """`value` as an int >= 1, else an error that names `name`: the one check every entry point uses.

    bool is refused (True is not a count), and so are floats and strings; numpy integers are accepted.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"{name} must be a positive int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)
