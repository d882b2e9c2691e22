"""What the Azure client retries, and how long it may take: statuses, errors, backoff, timeouts.

``RetryPolicy.worst_case_seconds`` is what the job timeouts are sized from (see ``jobs.queues``).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Protocol

import httpx

__all__ = [
    "AMBIGUOUS_ERRORS",
    "RETRY_ERRORS",
    "RETRY_STATUSES",
    "RetryPolicy",
    "Timeouts",
    "Uniform",
]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# The request may have been received and acted on before the connection failed.
AMBIGUOUS_ERRORS = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)
RETRY_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class Uniform(Protocol):
    """What backoff draws its jitter from: the ``random`` module or a ``random.Random``."""

    def uniform(self, a: float, b: float, /) -> float: ...


@dataclasses.dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 20.0
    write: float = 20.0
    pool: float = 5.0

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)

    def attempt_seconds(self) -> float:
        """Longest one attempt can take (Azure answers are small: one read)."""
        return self.pool + self.connect + self.write + self.read


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    budget_seconds: float = 90.0
    base_delay: float = 0.5  # first retry waits up to this, doubling each time (full jitter)
    max_delay: float = 20.0
    timeouts: Timeouts = dataclasses.field(default_factory=Timeouts)
    # Longest wait for a pacing token before giving up with Throttled (also bounded by budget).
    pacing_max_wait: float = 60.0

    def backoff(self, attempt: int, rng: Uniform = random) -> float:
        """Delay before attempt ``attempt + 1``: uniform in [0, min(max, base * 2^(attempt-1))]."""
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    def worst_case_seconds(self) -> float:
        """Longest one client call can take, retries, backoff and pacing included.

        No attempt starts (and no pacing wait or backoff extends) past the budget, so the worst
        case is the budget plus one full attempt started just before it ran out.
        """
        return self.budget_seconds + self.timeouts.attempt_seconds()
