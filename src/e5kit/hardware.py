"""What this machine's CPU is and can do: the one place e5kit reads /proc/cpuinfo.

The bench prints the model and the matrix-unit flags with its results; e5kit's attention kernels
(model/native_attention.py) run only where the flags they need are present.
"""

from __future__ import annotations

import functools
import platform


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first processor listed in /proc/cpuinfo's `text`; ('', {}) when absent."""
    model, flags = "", None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and flags is None:
            flags = frozenset(value.split())
    return model, flags or frozenset()


@functools.cache
def cpu() -> tuple[str, frozenset[str]]:
    """(model name, flags) of this machine's CPU; the flags are empty where /proc/cpuinfo is not readable."""
    try:
        with open("/proc/cpuinfo") as fh:
            model, flags = parse_cpuinfo(fh.read())
    except OSError:
        model, flags = "", frozenset()
    return model or platform.processor() or "unknown", flags


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags as Linux names them (amx_bf16, avx512_bf16, ...); empty when unknown."""
    return cpu()[1]
