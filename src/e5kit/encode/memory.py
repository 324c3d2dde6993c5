"""Give freed heap memory back to the OS between chunks, so long encodes do not creep upward.

Batches of ever-different shapes leave glibc's heap fragmented: freed tensors stay mapped and RSS
climbs chunk after chunk (measured: a 2-layer model streaming 8,000 texts in 500-text chunks grew
560 -> 907 MB; with a trim after each chunk it stayed at 435 MB). `malloc_trim(0)` returns the free
pages; elsewhere (macOS, musl, Windows) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    return _libc_function("malloc_trim")


def trim_heap() -> bool:
    """Release free heap pages to the OS (glibc); True when a trim ran."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
MMAP_THRESHOLD_BYTES = 1 << 20
_limited = False


def limit_heap_growth() -> bool:
    """Serve every allocation >= 1 MB (activations, token arrays) by mmap, returned to the OS on free.

    glibc raises its mmap threshold after large frees (up to 32 MB), after which tensors come from
    the heap and fragment it, so the peak inside a chunk creeps up: measured on 16k streamed texts,
    peak RSS 1,006 -> 1,148 MB by default, 697 -> 732 MB with a trim after every batch, 547 -> 550 MB
    with this fixed 1 MB threshold. But every large tensor then costs fresh page faults, which
    slowed bf16 encoding visibly, so it is opt-in: E5KIT_MALLOPT=1 (process-wide, glibc only).
    The default trims the heap once per chunk (8,192 texts) and keeps CPU batches at 4,096 tokens, whose
    activations stay under glibc's mmap threshold and are reused from the heap batch after batch. A trim
    after every batch was the default before; it made each batch fault its memory in anew (up to 1.3x
    slower in bf16 on a Xeon with AMX, docs/bench-encode.md).
    """
    global _limited
    import os

    if _limited or os.environ.get("E5KIT_MALLOPT", "0") != "1":
        return _limited
    fn = _libc_function("mallopt")
    if fn is not None:
        _limited = bool(fn(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    return _limited


def _libc_function(name: str):
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None
