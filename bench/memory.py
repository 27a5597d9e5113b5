"""Peak memory of the benchmark process, shared by the import benchmarks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psutil  # type: ignore[import-untyped]


class PeakRss:
    """Samples this process's resident memory every 10 ms while the block runs."""

    def __init__(self) -> None:
        self.peak = 0
        self.before = 0

    @contextmanager
    def watch(self) -> Iterator[None]:
        process = psutil.Process()
        self.before = process.memory_info().rss
        self.peak = self.before
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.01):
                self.peak = max(self.peak, process.memory_info().rss)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            self.peak = max(self.peak, process.memory_info().rss)
