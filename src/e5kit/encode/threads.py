"""Thread settings for the cores this process may really use (affinity and cgroup CPU quota)."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from e5kit.options import positive_int

log = logging.getLogger("e5kit")
_configured = False


def usable_cpus() -> int:
    """CPUs this process may run on: the affinity mask, capped by a cgroup v2 CPU quota if set."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def configure_threads(threads: int | None = None) -> int:
    """Set torch intra-op threads to `threads` or, once per process, to the usable CPUs.

    More threads than cores makes OpenMP workers preempt each other (a large slowdown on small
    machines); an explicit OMP_NUM_THREADS or a prior torch.set_num_threads by the user wins.
    """
    global _configured
    import torch

    if threads is not None:
        positive_int("threads", threads)
        torch.set_num_threads(threads)
        _configured = True
        return threads
    if not _configured and "OMP_NUM_THREADS" not in os.environ:
        cpus = usable_cpus()
        if torch.get_num_threads() > cpus:
            log.debug("torch threads %d -> %d (usable CPUs)", torch.get_num_threads(), cpus)
            torch.set_num_threads(cpus)
    _configured = True
    return torch.get_num_threads()
