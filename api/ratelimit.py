"""A token bucket per API key (per process).

Each API process keeps its own buckets: with N processes behind a load balancer the
effective limit is up to N x ESCOMPTE_RATE_LIMIT_PER_SECOND. It protects the database
from one runaway client; quotas that must be exact across processes belong in PostgreSQL.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time

from escompte.errors import RateLimited

MAX_BUCKETS = 100_000


class RateLimiter:
    def __init__(self, rate_per_second: float, burst: int) -> None:
        self.rate = rate_per_second
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, identity: str) -> None:
        key = hashlib.blake2b(identity.encode(), digest_size=16).hexdigest()
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate)
                raise RateLimited(
                    f"Rate limit exceeded; retry in {wait} s.",
                    extra={"retry_after_seconds": wait},
                )
            if len(self._buckets) >= MAX_BUCKETS and key not in self._buckets:
                self._buckets.clear()
            self._buckets[key] = (tokens - 1.0, now)
