"""What one delivery attempt achieved, and when to try again.

Both senders (``notify`` for chat and email, ``webhook`` for retraining triggers) return an
`Outcome` instead of raising: the outbox keeps it as the row's delivery state and decides the
next attempt with `backoff`, so a failing target never blocks the daemon (DESIGN.md §8).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

Status = Literal["delivered", "retry", "permanent"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """``delivered``; ``retry`` (may succeed later); ``permanent`` (retrying cannot help).

    ``error`` is for people and logs, never holds a secret; ``retry_after`` is the delay in
    seconds the target asked for (``Retry-After``), honoured instead of the backoff.
    """

    status: Status
    error: str | None = None
    http_status: int | None = None
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status == "delivered"


def backoff(
    attempt: int, base: float = 1.0, cap: float = 3600.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 = the first): full jitter.

    ``uniform(0, min(cap, base * 2**(attempt - 1)))`` (AWS "Exponential Backoff And Jitter"):
    replicas retrying one target spread out instead of hammering it in step.
    """
    ceiling = min(cap, base * 2 ** min(max(attempt - 1, 0), 62))
    return (rng or random).uniform(0.0, ceiling)
