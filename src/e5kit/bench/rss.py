"""Resident memory of this process: stdlib only, so that the sentence-transformers worker
(`st_worker`, run by another Python environment without e5kit) measures it the same way."""

from __future__ import annotations

import threading


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096
    except (OSError, ValueError, IndexError):
        return 0


class PeakRss:
    """Samples RSS every `interval` s in a thread while the block runs; `.peak` is the max seen,
    `.start` the RSS when the block began (so `peak - start` is what the block itself needed)."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak = self.start = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self.peak = self.start = rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
