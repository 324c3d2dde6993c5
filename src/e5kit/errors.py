"""Exceptions e5kit raises on purpose; the CLI turns them into one line and exit code 1."""

from __future__ import annotations


class E5kitError(Exception):
    """Base class: a problem with the user's input, model or environment, not a bug."""


class ModelLoadError(E5kitError):
    """A model could not be resolved or loaded; the message names the model and the fix."""


class InputFormatError(E5kitError, ValueError):
    """An input file or record is malformed; the message names the file and line."""
